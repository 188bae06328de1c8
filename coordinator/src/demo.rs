//! Demo data: the eight TPC-H tables, generated with the tpchgen crates into the
//! data directory as Parquet and registered as ordinary external tables, so a
//! newcomer can query at once and sees exactly what an admin would register.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::ArrowWriter;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};
use vivace_catalog::TableName;
use vivace_connectors::TableRequest;

use crate::engine::Engine;
use vivace_catalog::DEFAULT_SCHEMA;

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// The TPC-H tables and how to generate each at scale factor `sf`.
fn tables(sf: f64) -> Vec<(&'static str, Batches)> {
    vec![
        (
            "region",
            Box::new(RegionArrow::new(RegionGenerator::new(sf, 1, 1))) as Batches,
        ),
        (
            "nation",
            Box::new(NationArrow::new(NationGenerator::new(sf, 1, 1))),
        ),
        (
            "supplier",
            Box::new(SupplierArrow::new(SupplierGenerator::new(sf, 1, 1))),
        ),
        (
            "customer",
            Box::new(CustomerArrow::new(CustomerGenerator::new(sf, 1, 1))),
        ),
        (
            "part",
            Box::new(PartArrow::new(PartGenerator::new(sf, 1, 1))),
        ),
        (
            "partsupp",
            Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1))),
        ),
        (
            "orders",
            Box::new(OrderArrow::new(OrderGenerator::new(sf, 1, 1))),
        ),
        (
            "lineitem",
            Box::new(LineItemArrow::new(LineItemGenerator::new(sf, 1, 1))),
        ),
    ]
}

/// Write one table's batches to `dir/part-0.parquet` (via a temporary name, so a
/// crash never leaves a half-written file that looks complete).
fn write_parquet(dir: &Path, batches: Batches) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("part-0.parquet.tmp");
    let file = std::fs::File::create(&tmp)?;
    let mut batches = batches.peekable();
    let schema = match batches.peek() {
        Some(Ok(b)) => b.schema(),
        Some(Err(e)) => anyhow::bail!("generation failed: {e}"),
        None => anyhow::bail!("generator produced no rows"),
    };
    let mut writer = ArrowWriter::try_new(file, schema, None)?;
    for batch in batches {
        writer.write(&batch?)?;
    }
    writer.close()?;
    std::fs::rename(tmp, dir.join("part-0.parquet"))?;
    Ok(())
}

/// Generate (once) and register the demo tables. Tables that already exist are
/// left alone, so restarts are cheap and admin changes are kept.
pub async fn install(engine: &Arc<Engine>, data_dir: &Path, sf: f64) -> anyhow::Result<()> {
    let root: PathBuf = std::path::absolute(data_dir.join("demo").join(format!("tpch-sf{sf}")))?;
    for (name, batches) in tables(sf) {
        let dir = root.join(name);
        if !dir.join("part-0.parquet").exists() {
            let target = dir.clone();
            tokio::task::spawn_blocking(move || write_parquet(&target, batches))
                .await?
                .with_context(|| format!("cannot generate demo table {name}"))?;
        }
        let request = TableRequest {
            name: TableName::new(DEFAULT_SCHEMA, name),
            connector: "parquet".into(),
            location: format!("{}/", dir.display()),
            declared_schema: None,
            partition_columns: vec![],
            options: Default::default(),
        };
        engine
            .create_table(request, true)
            .await
            .map_err(|e| anyhow::anyhow!("cannot register demo table {name}: {}", e.message))?;
    }
    tracing::info!(scale_factor = sf, path = %root.display(), "TPC-H demo tables ready");
    Ok(())
}
