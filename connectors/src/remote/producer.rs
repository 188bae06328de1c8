//! A stream of batches fed by a task: for sources read page by page (CQL
//! pages, search pages) whose reader is easiest written as a loop that sends.
//!
//! [`spawn_batches`] spawns the reader with the sending half of a channel of
//! two batches (so it reads at most two pages ahead) and streams what it sends.
//! Dropping the stream (the query finished early, was cancelled or timed out)
//! closes the channel; the task is not aborted: the reader sees the closed
//! channel (a failed send, [`mpsc::Sender::closed`] raced against each request)
//! and stops before its next page, so it can still clean up after itself
//! (close a point in time).

use std::future::Future;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use tokio::sync::mpsc;

/// Where a reader sends its batches.
pub type BatchSender = mpsc::Sender<DFResult<RecordBatch>>;

/// Batches of `schema` that `read` sends, read in a task spawned now; an
/// error `read` returns is the stream's last item.
pub fn spawn_batches<F, Fut, E>(schema: SchemaRef, read: F) -> SendableRecordBatchStream
where
    F: FnOnce(BatchSender) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<DataFusionError>,
{
    let (tx, rx) = mpsc::channel::<DFResult<RecordBatch>>(2);
    let reading = read(tx.clone());
    tokio::spawn(async move {
        let read: DFResult<()> = reading.await.map_err(Into::into);
        if let Err(e) = read {
            let _ = tx.send(Err(e)).await;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use datafusion::arrow::array::Int32Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use futures::StreamExt;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, false)]))
    }

    fn batch(n: i32) -> RecordBatch {
        RecordBatch::try_new(schema(), vec![Arc::new(Int32Array::from(vec![n]))]).unwrap()
    }

    #[tokio::test]
    async fn batches_then_the_error_end_the_stream() {
        let stream = spawn_batches(schema(), |tx| async move {
            for n in 0..3 {
                tx.send(Ok(batch(n))).await.unwrap();
            }
            Err(DataFusionError::Execution("page 4 failed".into()))
        });
        let items: Vec<_> = stream.collect().await;
        assert_eq!(items.len(), 4);
        assert!(items[..3].iter().all(Result::is_ok));
        let last = items[3].as_ref().unwrap_err().to_string();
        assert!(last.contains("page 4 failed"), "{last}");
    }

    #[tokio::test]
    async fn dropping_the_stream_stops_the_reader_which_can_still_clean_up() {
        let sent = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let counter = Arc::clone(&sent);
        let mut stream = spawn_batches(schema(), move |tx| async move {
            for n in 0.. {
                let page = tokio::select! {
                    _ = tx.closed() => break,
                    page = async { batch(n) } => page,
                };
                if tx.send(Ok(page)).await.is_err() {
                    break;
                }
                counter.fetch_add(1, Ordering::SeqCst);
            }
            // The clean-up after a cancelled read still runs.
            let _ = done_tx.send(());
            Ok::<_, DataFusionError>(())
        });
        assert!(stream.next().await.unwrap().is_ok());
        drop(stream);
        tokio::time::timeout(std::time::Duration::from_secs(5), done_rx)
            .await
            .expect("the reader stops once the stream is dropped")
            .unwrap();
        // One read, two waiting in the channel, at most one more in flight.
        assert!(sent.load(Ordering::SeqCst) <= 4, "{sent:?}");
    }
}
