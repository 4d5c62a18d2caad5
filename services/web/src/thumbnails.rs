//! Thumbnails of photos: made once from the stored file's bytes, kept by content hash.
//!
//! A thumbnail is served only after the caller's own `StatFile` of the file succeeded, so
//! the cache never widens who sees a photo. Decoding is bounded (`image::Limits`), and a
//! file that is not a decodable raster image gets no thumbnail (the page links the file).

use std::io::Cursor;

use deadpool_postgres::Pool;
use image::ImageReader;

use crate::WebError;

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;
/// The largest photo a thumbnail is made of, in bytes.
pub const MAX_SOURCE_BYTES: u64 = 32 * 1024 * 1024;
/// The most memory a decode may take.
const MAX_DECODE_ALLOC: u64 = 256 * 1024 * 1024;

/// Thumbnails made at once at most (each holds its photo in memory while it decodes).
const MAKING_AT_ONCE: usize = 2;

#[derive(Clone, Debug)]
pub struct Thumbnails {
    pool: Pool,
    making: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Thumbnails {
    pub fn new(pool: Pool) -> Self {
        Self { pool, making: std::sync::Arc::new(tokio::sync::Semaphore::new(MAKING_AT_ONCE)) }
    }

    /// Waits for one of the [`MAKING_AT_ONCE`] slots; hold it while the photo is read and
    /// scaled, so a page of large photos cannot fill the memory.
    pub async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, WebError> {
        self.making.clone().acquire_owned().await.map_err(|_| WebError::Internal("the thumbnail slots are closed".to_owned()))
    }

    /// The kept thumbnail of the file with content hash `sha256`: (content type, bytes).
    pub async fn cached(&self, sha256: &str) -> Result<Option<(String, Vec<u8>)>, WebError> {
        let client = self.pool.get().await?;
        let row = client.query_opt("SELECT content_type, bytes FROM web_thumbnails WHERE sha256 = $1", &[&sha256]).await?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    /// Keeps a thumbnail made of `source`; returns it (JPEG).
    pub async fn make(&self, sha256: &str, source: Vec<u8>) -> Result<Vec<u8>, WebError> {
        let thumbnail = tokio::task::spawn_blocking(move || scale_down(&source))
            .await
            .map_err(|error| WebError::Internal(format!("thumbnail task failed: {error}")))??;
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO web_thumbnails (sha256, content_type, bytes) VALUES ($1, 'image/jpeg', $2) ON CONFLICT (sha256) DO NOTHING",
                &[&sha256, &thumbnail],
            )
            .await?;
        Ok(thumbnail)
    }
}

/// Decodes `source` (JPEG, PNG, GIF or WebP, within the limits) and encodes a JPEG whose
/// longer side is at most [`THUMBNAIL_SIDE`].
pub fn scale_down(source: &[u8]) -> Result<Vec<u8>, WebError> {
    let mut reader =
        ImageReader::new(Cursor::new(source)).with_guessed_format().map_err(|error| WebError::BadRequest(format!("not an image: {error}")))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|error| WebError::BadRequest(format!("the photo could not be decoded: {error}")))?;
    let small =
        if image.width() <= THUMBNAIL_SIDE && image.height() <= THUMBNAIL_SIDE { image } else { image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE) }
            .to_rgb8();
    let mut encoded = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 80)
        .encode_image(&small)
        .map_err(|error| WebError::Internal(format!("encoding a thumbnail failed: {error}")))?;
    Ok(encoded)
}

#[cfg(test)]
mod tests {
    use super::{scale_down, THUMBNAIL_SIDE};

    #[test]
    fn a_photo_is_scaled_to_the_thumbnail_side_and_garbage_is_refused() {
        let photo = image::RgbImage::from_fn(1280, 640, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(photo).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).expect("png");
        let thumbnail = image::load_from_memory(&scale_down(&png).expect("thumbnail")).expect("a jpeg");
        assert_eq!((thumbnail.width(), thumbnail.height()), (THUMBNAIL_SIDE, THUMBNAIL_SIDE / 2));
        assert!(scale_down(b"<svg onload=alert(1)>").is_err());
        let mut tiny = Vec::new();
        image::DynamicImage::ImageRgb8(image::RgbImage::new(1, 1))
            .write_to(&mut std::io::Cursor::new(&mut tiny), image::ImageFormat::Png)
            .expect("png");
        let kept = image::load_from_memory(&scale_down(&tiny).expect("thumbnail")).expect("a jpeg");
        assert_eq!((kept.width(), kept.height()), (1, 1), "small pictures are not enlarged");
    }
}
