//! SQL cursors of one session: `DECLARE name CURSOR FOR query`, `FETCH`, `CLOSE`.
//!
//! psycopg2's named (server-side) cursors and Redash page through results this
//! way. A cursor holds the running query's stream; `FETCH n` pulls n rows from it,
//! keeping the rest of a partly read batch, so memory stays one batch whatever
//! the result size. Cursors only move forward (PostgreSQL's `NO SCROLL`).

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use crate::error::{SqlError, SqlResult, sqlstate};

/// How many rows a `FETCH` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchCount {
    /// `FETCH n`, `FETCH NEXT` (1), `FETCH FORWARD n`.
    Rows(usize),
    /// `FETCH ALL`, `FETCH FORWARD ALL`: every remaining row, streamed.
    All,
}

/// An open cursor: its columns and the rest of its rows.
struct Cursor {
    schema: SchemaRef,
    batches: Option<SendableRecordBatchStream>,
    /// Rows of a batch a previous FETCH read only in part.
    pending: Option<RecordBatch>,
    /// `WITH HOLD`: survives the end of the transaction.
    hold: bool,
}

/// The open cursors of a session, by name.
#[derive(Default)]
pub struct Cursors {
    open: BTreeMap<String, Cursor>,
}

impl Cursors {
    /// Open `name` over a started query. PostgreSQL refuses a second cursor of the
    /// same name with 42P03.
    pub fn declare(
        &mut self,
        name: &str,
        batches: SendableRecordBatchStream,
        hold: bool,
    ) -> SqlResult<()> {
        if self.open.contains_key(name) {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_CURSOR,
                format!("cursor \"{name}\" already exists"),
            ));
        }
        self.open.insert(
            name.to_string(),
            Cursor {
                schema: batches.schema(),
                batches: Some(batches),
                pending: None,
                hold,
            },
        );
        Ok(())
    }

    /// The columns a FETCH from `name` returns.
    pub fn schema(&self, name: &str) -> SqlResult<SchemaRef> {
        Ok(self.get(name)?.schema.clone())
    }

    /// The next `count` rows of `name`. `FETCH n` reads ahead at most one batch
    /// beyond n rows; `FETCH ALL` hands over the rest of the stream.
    pub async fn fetch(
        &mut self,
        name: &str,
        count: FetchCount,
    ) -> SqlResult<SendableRecordBatchStream> {
        let cursor = self.get_mut(name)?;
        let schema = cursor.schema.clone();
        let pending = cursor.pending.take();
        let rest = cursor.batches.take();
        let n = match count {
            FetchCount::All => {
                let head = futures::stream::iter(pending.map(Ok));
                let stream = match rest {
                    Some(rest) => head.chain(rest).boxed(),
                    None => head.boxed(),
                };
                return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)));
            }
            FetchCount::Rows(n) => n,
        };
        let mut taken: Vec<RecordBatch> = Vec::new();
        let mut rows = 0;
        let mut next = pending;
        let mut rest = rest;
        while rows < n {
            let batch = match next.take() {
                Some(batch) => batch,
                None => match rest.as_mut() {
                    Some(stream) => match stream.next().await {
                        Some(batch) => batch?,
                        None => {
                            rest = None;
                            break;
                        }
                    },
                    None => break,
                },
            };
            let want = n - rows;
            if batch.num_rows() > want {
                taken.push(batch.slice(0, want));
                cursor.pending = Some(batch.slice(want, batch.num_rows() - want));
                rows = n;
            } else {
                rows += batch.num_rows();
                taken.push(batch);
            }
        }
        cursor.batches = rest;
        let batch =
            concat_batches(&schema, &taken).map_err(datafusion::error::DataFusionError::from)?;
        let stream = futures::stream::iter([Ok(batch)]);
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    /// `CLOSE name`, or `CLOSE ALL` when `name` is `None`.
    pub fn close(&mut self, name: Option<&str>) -> SqlResult<()> {
        match name {
            None => self.open.clear(),
            Some(name) => {
                self.open.remove(name).ok_or_else(|| missing(name))?;
            }
        }
        Ok(())
    }

    /// The transaction ended: cursors without `WITH HOLD` close, as in PostgreSQL.
    pub fn end_transaction(&mut self) {
        self.open.retain(|_, c| c.hold);
    }

    fn get(&self, name: &str) -> SqlResult<&Cursor> {
        self.open.get(name).ok_or_else(|| missing(name))
    }

    fn get_mut(&mut self, name: &str) -> SqlResult<&mut Cursor> {
        self.open.get_mut(name).ok_or_else(|| missing(name))
    }
}

fn missing(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_CURSOR_NAME,
        format!("cursor \"{name}\" does not exist"),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn stream(sizes: &[i64]) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let mut next = 0;
        let batches: Vec<_> = sizes
            .iter()
            .map(|size| {
                let values: Vec<i64> = (next..next + size).collect();
                next += size;
                Ok(
                    RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))])
                        .unwrap(),
                )
            })
            .collect();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches),
        ))
    }

    async fn values(stream: SendableRecordBatchStream) -> Vec<i64> {
        let batches: Vec<RecordBatch> = stream.map(|b| b.unwrap()).collect().await;
        batches
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                (0..a.len()).map(|i| a.value(i)).collect::<Vec<_>>()
            })
            .collect()
    }

    #[tokio::test]
    async fn fetches_across_batch_boundaries_then_the_rest() {
        let mut cursors = Cursors::default();
        cursors.declare("c", stream(&[3, 4, 2]), false).unwrap();
        let first = cursors.fetch("c", FetchCount::Rows(2)).await.unwrap();
        assert_eq!(values(first).await, vec![0, 1]);
        let second = cursors.fetch("c", FetchCount::Rows(4)).await.unwrap();
        assert_eq!(values(second).await, vec![2, 3, 4, 5]);
        let rest = cursors.fetch("c", FetchCount::All).await.unwrap();
        assert_eq!(values(rest).await, vec![6, 7, 8]);
        let empty = cursors.fetch("c", FetchCount::Rows(5)).await.unwrap();
        assert_eq!(values(empty).await, Vec::<i64>::new());
    }

    #[tokio::test]
    async fn names_are_unique_and_transactions_close_cursors_without_hold() {
        let mut cursors = Cursors::default();
        cursors.declare("a", stream(&[1]), false).unwrap();
        cursors.declare("h", stream(&[1]), true).unwrap();
        let dup = cursors.declare("a", stream(&[1]), false).unwrap_err();
        assert_eq!(dup.code, "42P03");
        cursors.end_transaction();
        assert_eq!(cursors.schema("a").unwrap_err().code, "34000");
        assert!(cursors.schema("h").is_ok());
        cursors.close(Some("h")).unwrap();
        assert_eq!(cursors.close(Some("h")).unwrap_err().code, "34000");
    }
}
