//! `'name'::regproc` literals become the function's bare name:
//! datafusion-pg-catalog stores regproc columns (`pg_type.typinput`, ...) as
//! names, so pgjdbc's `typinput = 'pg_catalog.array_in'::regproc` must compare
//! names. This runs on the tokens, before datafusion-pg-catalog's parser turns
//! reg casts into OID lookups.

/// `sql` with each `'schema.name'::regproc` literal replaced by `'name'`;
/// borrowed unchanged when there is none (or the text does not tokenize, which
/// the parser will report).
pub fn regproc_literals_as_names(sql: &str) -> std::borrow::Cow<'_, str> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.to_ascii_lowercase().contains("regproc") {
        return sql.into();
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return sql.into();
    };
    let significant =
        |i: usize| (i..tokens.len()).find(|&j| !matches!(tokens[j], Token::Whitespace(_)));
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut changed = false;
    while i < tokens.len() {
        if let Token::SingleQuotedString(name) = &tokens[i]
            && let Some(colons) = significant(i + 1)
            && tokens[colons] == Token::DoubleColon
            && let Some(ty) = significant(colons + 1)
            && matches!(&tokens[ty], Token::Word(w) if w.value.eq_ignore_ascii_case("regproc"))
        {
            let bare = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
            out.push_str(&Token::SingleQuotedString(bare.to_string()).to_string());
            i = ty + 1;
            changed = true;
            continue;
        }
        out.push_str(&tokens[i].to_string());
        i += 1;
    }
    if changed { out.into() } else { sql.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regproc_literals_become_names() {
        assert_eq!(
            regproc_literals_as_names(
                "SELECT typinput='pg_catalog.array_in'::regproc AS a, 'x::regproc'"
            ),
            "SELECT typinput='array_in' AS a, 'x::regproc'"
        );
        let untouched = "SELECT 1";
        assert!(matches!(
            regproc_literals_as_names(untouched),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
