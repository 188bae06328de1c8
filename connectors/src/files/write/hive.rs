//! Hive-style partition folders: `col=value/`, the value escaped as Hive's
//! `FileUtils.escapePathName` does (`%XX` for `/`, `=`, `:`, `%` and the other
//! characters a path cannot hold), which DataFusion decodes when it reads.

/// Characters Hive escapes in a partition value, besides control characters.
const ESCAPED: &[char] = &[
    '"', '#', '%', '\'', '*', '/', ':', '=', '?', '\\', '\u{7f}', '{', '[', ']', '^',
];

/// A partition value as Hive writes it in a folder name.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if (c as u32) < 0x20 || ESCAPED.contains(&c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The folders of one partition, `a=1/b=x/`, from its columns and values.
pub fn partition_folder<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(column, value)| format!("{}={}/", escape(column), escape(value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_as_hive_escapes_them() {
        assert_eq!(escape("2024-03-05"), "2024-03-05");
        assert_eq!(escape("a/b=c:d"), "a%2Fb%3Dc%3Ad");
        assert_eq!(escape("100%"), "100%25");
        assert_eq!(escape("new\nline"), "new%0Aline");
        assert_eq!(escape("São Paulo"), "São Paulo");
        assert_eq!(
            partition_folder([("dt", "2024-03-05"), ("kind", "x/y")]),
            "dt=2024-03-05/kind=x%2Fy/"
        );
    }
}
