//! Hive-style partition folders: `col=value/`, each folder name encoded as
//! an object-store path segment — `/`, `%`, `#`, `?`, `*`, control and the
//! other characters object stores reserve become `%XX`, as Hive escapes them —
//! which DataFusion (and Hive, Spark, pyarrow) decode when they read.

use object_store::path::PathPart;

/// The folders of one partition, `a=1/b=x%2Fy/`, from its columns and values.
pub fn partition_folder<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(column, value)| {
            let segment = format!("{column}={value}");
            format!("{}/", PathPart::from(segment.as_str()).as_ref())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_folder_names() {
        assert_eq!(partition_folder([("dt", "2024-03-05")]), "dt=2024-03-05/");
        assert_eq!(
            partition_folder([("dt", "2024-03-05"), ("kind", "x/y")]),
            "dt=2024-03-05/kind=x%2Fy/"
        );
        assert_eq!(partition_folder([("k", "100%")]), "k=100%25/");
        assert_eq!(partition_folder([("k", "new\nline?")]), "k=new%0Aline%3F/");
        // Non-ASCII is percent-encoded too (UTF-8 bytes); readers decode it.
        assert_eq!(partition_folder([("k", "São Paulo")]), "k=S%C3%A3o Paulo/");
    }
}
