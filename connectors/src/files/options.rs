//! `OPTIONS (...)` of file tables, parsed into a typed struct with clear errors.
//!
//! Secrets are never accepted as values: credentials are named by environment
//! variable (`'aws.secret_access_key_env' 'MY_SECRET'`) and read when used.

use std::collections::BTreeMap;

use datafusion::common::GetExt;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;

use crate::options::{OptionSpec, OptionValues, concat, parse_bool, read_env};
use crate::{ConnectorError, ConnectorResult};

/// The file formats Vivace reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormatKind {
    /// Apache Parquet.
    Parquet,
    /// Comma (or other delimiter) separated values.
    Csv,
    /// Newline-delimited JSON.
    Json,
    /// Apache Avro object container files.
    Avro,
}

impl FileFormatKind {
    /// Every supported format.
    pub const ALL: [FileFormatKind; 4] = [Self::Parquet, Self::Csv, Self::Json, Self::Avro];

    /// The lower-case `STORED AS` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Avro => "avro",
        }
    }

    fn allows_compression(self) -> bool {
        matches!(self, Self::Csv | Self::Json)
    }
}

/// How to reach an S3-compatible store. Holds no secret value: credentials are
/// named by environment variable and read when the store is built, in whichever
/// process builds it (coordinator or worker).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct S3Options {
    /// `aws.region`.
    pub region: Option<String>,
    /// `aws.endpoint`: URL of a non-AWS S3-compatible server.
    pub endpoint: Option<String>,
    /// `aws.access_key_id` (an identifier, not a secret).
    pub access_key_id: Option<String>,
    /// `aws.access_key_id_env`: variable holding the key id.
    pub access_key_id_env: Option<String>,
    /// `aws.secret_access_key_env`: variable holding the secret key.
    pub secret_access_key_env: Option<String>,
    /// `aws.session_token_env`: variable holding a session token.
    pub session_token_env: Option<String>,
    /// `aws.allow_http`: permit `http://` endpoints (default: true when the endpoint is http).
    pub allow_http: bool,
    /// `aws.virtual_hosted_style`: bucket in the host name (default false with an endpoint).
    pub virtual_hosted_style: bool,
}

impl S3Options {
    /// The key id, literal or from its variable.
    pub fn access_key_id(&self) -> ConnectorResult<Option<String>> {
        match &self.access_key_id_env {
            Some(var) => read_env("aws.access_key_id_env", var).map(Some),
            None => Ok(self.access_key_id.clone()),
        }
    }

    /// The secret key, from its variable.
    pub fn secret_access_key(&self) -> ConnectorResult<Option<String>> {
        self.secret_access_key_env
            .as_ref()
            .map(|var| read_env("aws.secret_access_key_env", var))
            .transpose()
    }

    /// The session token, from its variable.
    pub fn session_token(&self) -> ConnectorResult<Option<String>> {
        self.session_token_env
            .as_ref()
            .map(|var| read_env("aws.session_token_env", var))
            .transpose()
    }
}

/// Typed options of a file table.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// Which format the files are in.
    pub kind: FileFormatKind,
    /// `header`: CSV files start with a header line (default true).
    pub header: bool,
    /// `delimiter`: CSV field separator, one ASCII character (default `,`).
    pub delimiter: u8,
    /// `compression`: `gzip`, `bzip2`, `xz`, `zstd` or `none` (CSV and JSON only).
    pub compression: FileCompressionType,
    /// `file_extension`: only files ending with this are read (default from format
    /// and compression, e.g. `.csv.gz`; `''` reads every file).
    pub file_extension: String,
    /// S3 connection settings (`aws.*` keys).
    pub s3: S3Options,
    /// `target_file_size`: writes roll to a new file past this many bytes.
    pub target_file_size: u64,
    /// `sorted_by`: writes sort each file by these columns (`SORTED BY`).
    pub sorted_by: Vec<String>,
}

/// Files a write rolls over at unless `target_file_size` says otherwise.
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// The `OPTIONS` keys of file tables (Parquet, CSV, JSON, Avro).
pub const OPTIONS: &[OptionSpec] = &concat::<6, 10, 16>(
    [
        OptionSpec::with_default(
            "header",
            "CSV only: the files start with a header line",
            "true",
        ),
        OptionSpec::with_default(
            "delimiter",
            "CSV only: the field separator, one ASCII character ('\\t' for tab)",
            ",",
        ),
        OptionSpec::with_default(
            "compression",
            "CSV and JSON only: gzip, bzip2, xz, zstd or none",
            "none",
        ),
        OptionSpec::key(
            "file_extension",
            "only files ending with this are read (default from format and compression, e.g. .csv.gz; '' reads every file)",
        ),
        TARGET_FILE_SIZE,
        SORTED_BY,
    ],
    S3_OPTIONS,
);

/// `target_file_size`, of every table Vivace writes files into.
pub const TARGET_FILE_SIZE: OptionSpec = OptionSpec::with_default(
    "target_file_size",
    "writes: start a new file past this size (e.g. 256MB, 1GiB)",
    "128MiB",
);

/// `sorted_by`, of every table Vivace writes files into.
pub const SORTED_BY: OptionSpec = OptionSpec::key(
    "sorted_by",
    "writes: sort each written file by these comma-separated columns (SORTED BY)",
);

/// The `aws.*` keys of tables on S3 (files and Delta), each refused at a
/// local location.
pub const S3_OPTIONS: [OptionSpec; 10] = [
    OptionSpec::key("aws.region", "s3:// only: the bucket's region"),
    OptionSpec::key(
        "aws.endpoint",
        "s3:// only: URL of a non-AWS S3-compatible server",
    ),
    OptionSpec::key(
        "aws.access_key_id",
        "s3:// only: the access key id (an identifier, not a secret)",
    ),
    OptionSpec::key(
        "aws.access_key_id_env",
        "s3:// only: variable holding the access key id",
    ),
    OptionSpec::key(
        "aws.secret_access_key_env",
        "s3:// only: variable holding the secret key",
    ),
    OptionSpec::key(
        "aws.session_token_env",
        "s3:// only: variable holding a session token",
    ),
    OptionSpec::key(
        "aws.allow_http",
        "s3:// only: permit http:// endpoints (default: true when the endpoint is http)",
    ),
    OptionSpec::key(
        "aws.virtual_hosted_style",
        "s3:// only: the bucket in the host name (default: false with an endpoint)",
    ),
    OptionSpec::secret("aws.secret_access_key", "aws.secret_access_key_env"),
    OptionSpec::secret("aws.session_token", "aws.session_token_env"),
];

impl FileOptions {
    /// Parse and validate `options` for a table of `kind` at `location`.
    pub fn parse(
        kind: FileFormatKind,
        location: &str,
        options: &BTreeMap<String, String>,
    ) -> ConnectorResult<Self> {
        let values = OptionValues::check(OPTIONS, options, &kind.name().to_uppercase())?;
        for key in options.keys() {
            check_applies(kind, location, key)?;
        }
        let get = |k: &str| values.get(k);
        let compression = parse_compression(get("compression"))?;
        if compression != FileCompressionType::UNCOMPRESSED && !kind.allows_compression() {
            return Err(ConnectorError::invalid_option(format!(
                "option 'compression' is not valid for {} tables (the format compresses internally)",
                kind.name().to_uppercase()
            )));
        }
        let file_extension = match get("file_extension") {
            Some(ext) => ext.to_string(),
            None => format!(".{}{}", kind.name(), compression.get_ext()),
        };
        Ok(Self {
            kind,
            header: parse_bool("header", get("header"), true)?,
            delimiter: parse_delimiter(get("delimiter"))?,
            compression,
            file_extension,
            s3: parse_s3(options)?,
            target_file_size: match get("target_file_size") {
                Some(text) => parse_size("target_file_size", text)?,
                None => DEFAULT_TARGET_FILE_SIZE,
            },
            sorted_by: get("sorted_by")
                .map(|list| {
                    list.split(',')
                        .map(|c| c.trim().to_string())
                        .filter(|c| !c.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// A size in bytes: `1048576`, `64KB`, `256MB`, `1.5GiB` (K, M, G are
/// binary multiples, with or without `B`/`iB`).
pub fn parse_size(key: &str, text: &str) -> ConnectorResult<u64> {
    let bad = || {
        ConnectorError::invalid_option(format!(
            "option '{key}' must be a size such as 256MB or 1GiB, not '{text}'"
        ))
    };
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let multiple: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(bad()),
    };
    let bytes = (number * multiple as f64) as u64;
    if bytes < 1024 {
        return Err(ConnectorError::invalid_option(format!(
            "option '{key}' must be at least 1KB, not '{text}'"
        )));
    }
    Ok(bytes)
}

/// Whether a declared key applies to this format and location.
fn check_applies(kind: FileFormatKind, location: &str, key: &str) -> ConnectorResult<()> {
    let csv_only = matches!(key, "header" | "delimiter");
    if csv_only && kind != FileFormatKind::Csv {
        return Err(ConnectorError::invalid_option(format!(
            "option '{key}' is only valid for CSV tables"
        )));
    }
    check_s3_key(location, key)
}

/// Refuse an `aws.*` key at a location that is not on S3.
pub fn check_s3_key(location: &str, key: &str) -> ConnectorResult<()> {
    if key.starts_with("aws.") && !location.starts_with("s3://") {
        return Err(ConnectorError::invalid_option(format!(
            "option '{key}' only applies to s3:// locations"
        )));
    }
    Ok(())
}

fn parse_delimiter(value: Option<&str>) -> ConnectorResult<u8> {
    match value {
        None => Ok(b','),
        Some(s) if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        Some("\\t") => Ok(b'\t'),
        Some(other) => Err(ConnectorError::invalid_option(format!(
            "option 'delimiter' must be a single ASCII character, not '{other}'"
        ))),
    }
}

fn parse_compression(value: Option<&str>) -> ConnectorResult<FileCompressionType> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("none" | "uncompressed") => Ok(FileCompressionType::UNCOMPRESSED),
        Some("gzip" | "gz") => Ok(FileCompressionType::GZIP),
        Some("bzip2" | "bz2") => Ok(FileCompressionType::BZIP2),
        Some("xz") => Ok(FileCompressionType::XZ),
        Some("zstd") => Ok(FileCompressionType::ZSTD),
        Some(other) => Err(ConnectorError::invalid_option(format!(
            "option 'compression' must be one of gzip, bzip2, xz, zstd, none; not '{other}'"
        ))),
    }
}

/// The `aws.*` settings among `options`, credential variables checked.
pub fn parse_s3(options: &BTreeMap<String, String>) -> ConnectorResult<S3Options> {
    let get = |k: &str| options.get(k).cloned();
    let endpoint = get("aws.endpoint");
    let http_endpoint = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    let s3 = S3Options {
        region: get("aws.region"),
        access_key_id: get("aws.access_key_id"),
        access_key_id_env: get("aws.access_key_id_env"),
        secret_access_key_env: get("aws.secret_access_key_env"),
        session_token_env: get("aws.session_token_env"),
        allow_http: parse_bool(
            "aws.allow_http",
            options.get("aws.allow_http").map(String::as_str),
            http_endpoint,
        )?,
        virtual_hosted_style: parse_bool(
            "aws.virtual_hosted_style",
            options.get("aws.virtual_hosted_style").map(String::as_str),
            endpoint.is_none(),
        )?,
        endpoint,
    };
    // Fail at CREATE time, not at the first query, when a named variable is unset.
    s3.access_key_id()?;
    s3.secret_access_key()?;
    s3.session_token()?;
    Ok(s3)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::options::pairs as opts;

    #[test]
    fn defaults_follow_the_format() {
        let o = FileOptions::parse(FileFormatKind::Csv, "/d/", &opts(&[])).unwrap();
        assert!(o.header);
        assert_eq!(o.delimiter, b',');
        assert_eq!(o.file_extension, ".csv");
        let o = FileOptions::parse(
            FileFormatKind::Json,
            "/d/",
            &opts(&[("compression", "gzip")]),
        )
        .unwrap();
        assert_eq!(o.file_extension, ".json.gz");
    }

    #[test]
    fn sizes_read_as_binary_multiples() {
        assert_eq!(parse_size("s", "256MB").unwrap(), 256 << 20);
        assert_eq!(parse_size("s", "1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("s", "64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("s", "1.5m").unwrap(), 3 << 19);
        assert_eq!(parse_size("s", "4096").unwrap(), 4096);
        assert!(parse_size("s", "12 parsecs").is_err());
        assert!(parse_size("s", "10").is_err());
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        let err = |kind, loc, pairs: &[(&str, &str)]| {
            FileOptions::parse(kind, loc, &opts(pairs))
                .err()
                .unwrap()
                .message
        };
        assert!(
            err(FileFormatKind::Parquet, "/d/", &[("colour", "red")])
                .contains("unknown option 'colour'")
        );
        assert!(
            err(FileFormatKind::Parquet, "/d/", &[("header", "true")])
                .contains("only valid for CSV")
        );
        assert!(err(FileFormatKind::Csv, "/d/", &[("header", "maybe")]).contains("true or false"));
        assert!(err(FileFormatKind::Csv, "/d/", &[("delimiter", ";;")]).contains("single ASCII"));
        assert!(err(FileFormatKind::Parquet, "/d/", &[("aws.region", "x")]).contains("s3://"));
        assert!(
            err(
                FileFormatKind::Parquet,
                "s3://b/",
                &[("aws.secret_access_key", "hunter2")]
            )
            .contains("aws.secret_access_key_env")
        );
        let missing = err(
            FileFormatKind::Parquet,
            "s3://b/",
            &[("aws.secret_access_key_env", "VIVACE_TEST_SURELY_UNSET")],
        );
        assert!(missing.contains("VIVACE_TEST_SURELY_UNSET"));
    }
}
