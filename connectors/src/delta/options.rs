//! `OPTIONS (...)` of Delta tables: the `aws.*` keys of S3 locations and the
//! writes' `target_file_size` and `sorted_by`, all shared with file tables
//! (whose writer writes a Delta table's files).

use std::collections::BTreeMap;

use crate::ConnectorResult;
use crate::files::S3Options;
use crate::files::options::{
    DEFAULT_TARGET_FILE_SIZE, S3_OPTIONS, SORTED_BY, TARGET_FILE_SIZE, check_s3_key, parse_s3,
    parse_size,
};
use crate::options::{OptionSpec, OptionValues, concat};

/// The `OPTIONS` keys of Delta tables.
pub const OPTIONS: &[OptionSpec] = &concat::<2, 10, 12>([TARGET_FILE_SIZE, SORTED_BY], S3_OPTIONS);

/// Typed options of a Delta table.
#[derive(Debug, Clone)]
pub struct DeltaOptions {
    /// S3 connection settings (`aws.*` keys).
    pub s3: S3Options,
    /// `target_file_size`: writes roll to a new file past this many bytes.
    pub target_file_size: u64,
}

impl DeltaOptions {
    /// Parse and validate `options` of a Delta table at `location`.
    pub fn parse(location: &str, options: &BTreeMap<String, String>) -> ConnectorResult<Self> {
        let values = OptionValues::check(OPTIONS, options, "DELTA")?;
        for key in options.keys() {
            check_s3_key(location, key)?;
        }
        Ok(Self {
            s3: parse_s3(options)?,
            target_file_size: match values.get("target_file_size") {
                Some(text) if values.given("target_file_size") => {
                    parse_size("target_file_size", text)?
                }
                _ => DEFAULT_TARGET_FILE_SIZE,
            },
        })
    }
}
