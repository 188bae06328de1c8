//! An object store that counts what it asks of the store it wraps: requests by
//! operation, bytes read (as the response bodies stream in) and bytes written,
//! recorded in this process's metrics (see [`crate::source_metrics`]) under the
//! store's scheme (`s3`). Every S3 bucket Vivace registers is wrapped, on the
//! coordinator and on workers alike.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
    UploadPart,
};

use crate::source_metrics as m;

/// `inner`, with its requests and bytes counted under `scheme`.
#[derive(Debug)]
pub struct CountedStore {
    inner: Arc<dyn ObjectStore>,
    scheme: &'static str,
}

impl CountedStore {
    /// Wrap `inner`, whose URLs have `scheme`.
    pub fn new(inner: Arc<dyn ObjectStore>, scheme: &'static str) -> Self {
        Self { inner, scheme }
    }

    fn request(&self, operation: &'static str) {
        metrics::counter!(m::OBJECT_STORE_REQUESTS, "store" => self.scheme, "operation" => operation)
            .increment(1);
    }
}

impl fmt::Display for CountedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counted({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CountedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.request("put");
        let size = payload.content_length() as u64;
        let result = self.inner.put_opts(location, payload, opts).await?;
        metrics::counter!(m::OBJECT_STORE_WRITTEN_BYTES, "store" => self.scheme).increment(size);
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.request("put");
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(CountedUpload {
            inner: upload,
            scheme: self.scheme,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let head = options.head;
        self.request(if head { "head" } else { "get" });
        let mut result = self.inner.get_opts(location, options).await?;
        if head {
            return Ok(result);
        }
        let scheme = self.scheme;
        result.payload = match result.payload {
            GetResultPayload::Stream(body) => GetResultPayload::Stream(
                body.inspect_ok(move |chunk| {
                    metrics::counter!(m::OBJECT_STORE_READ_BYTES, "store" => scheme)
                        .increment(chunk.len() as u64);
                })
                .boxed(),
            ),
            #[allow(unreachable_patterns)]
            other => {
                let Range { start, end } = result.range;
                metrics::counter!(m::OBJECT_STORE_READ_BYTES, "store" => scheme)
                    .increment(end - start);
                other
            }
        };
        Ok(result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.request("delete");
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.request("list");
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.request("list");
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.request("list");
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.request("copy");
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.request("rename");
        self.inner.rename_opts(from, to, options).await
    }
}

/// A multipart upload whose parts are counted as requests and written bytes.
#[derive(Debug)]
struct CountedUpload {
    inner: Box<dyn MultipartUpload>,
    scheme: &'static str,
}

#[async_trait]
impl MultipartUpload for CountedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let scheme = self.scheme;
        metrics::counter!(m::OBJECT_STORE_REQUESTS, "store" => scheme, "operation" => "put")
            .increment(1);
        metrics::counter!(m::OBJECT_STORE_WRITTEN_BYTES, "store" => scheme)
            .increment(data.content_length() as u64);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        metrics::counter!(m::OBJECT_STORE_REQUESTS, "store" => self.scheme, "operation" => "put")
            .increment(1);
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        metrics::counter!(m::OBJECT_STORE_REQUESTS, "store" => self.scheme, "operation" => "delete")
            .increment(1);
        self.inner.abort().await
    }
}
