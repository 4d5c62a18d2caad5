//! Reading a file back: part feeds stream each part from its node (every block verified
//! there), a stripe reader assembles the 6 data blocks of each stripe and rebuilds missing
//! or corrupt ones from parity, and the download task verifies the whole-file SHA-256
//! before it lets the last chunk go. Parts that failed are rewritten on their nodes in the
//! background once the file verified.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chatvault_file_store::erasure::{encode_parity, restore_data_blocks};
use chatvault_file_store::hashing::FileHashInBackground;
use chatvault_file_store::layout::StripeLayout;
use chatvault_file_store::node_client::NodeClients;
use chatvault_file_store::{part_id, DATA_PARTS, TOTAL_PARTS};
use chatvault_proto::storage::v1::FileInfo;
use tokio::sync::mpsc;

use crate::Error;

/// Where one part of a file is.
#[derive(Clone, Debug)]
pub struct PartLocation {
    pub index: usize,
    pub node_id: String,
    /// `None` when the node is not (yet) in the registry.
    pub address: Option<String>,
    pub size: u64,
    pub sha256: String,
}

/// Everything needed to read a file.
#[derive(Clone, Debug)]
pub struct FileManifest {
    pub info: FileInfo,
    pub block_size: u64,
    pub parts: Vec<PartLocation>,
}

impl FileManifest {
    /// Returns the stripe layout.
    pub fn layout(&self) -> StripeLayout {
        StripeLayout::new(self.block_size, self.info.size)
    }
}

/// One part streaming in from its node.
struct PartFeed {
    receiver: mpsc::Receiver<Result<Bytes, String>>,
    buffer: BytesMut,
}

impl PartFeed {
    fn open(clients: &NodeClients, file_id: &str, location: &PartLocation, first_block: u64) -> Self {
        let (sender, receiver) = mpsc::channel(4);
        let clients = clients.clone();
        let part = part_id(file_id, location.index);
        let address = location.address.clone();
        let expected_sha256 = location.sha256.clone();
        tokio::spawn(async move {
            let Some(address) = address else {
                let _ = sender.send(Err("its node is not registered".to_owned())).await;
                return;
            };
            let mut stream = match clients.get_part(&address, &part, &expected_sha256, first_block).await {
                Ok(stream) => stream,
                Err(error) => {
                    let _ = sender.send(Err(error.to_string())).await;
                    return;
                }
            };
            loop {
                let forwarded = match stream.message().await {
                    Ok(Some(message)) => Ok(message.chunk),
                    Ok(None) => return,
                    Err(status) => Err(format!("storage node {address}: {status}")),
                };
                let failed = forwarded.is_err();
                if sender.send(forwarded).await.is_err() || failed {
                    return;
                }
            }
        });
        Self { receiver, buffer: BytesMut::new() }
    }

    async fn read_exact(&mut self, length: usize) -> Result<Bytes, String> {
        while self.buffer.len() < length {
            match self.receiver.recv().await {
                Some(Ok(chunk)) if self.buffer.is_empty() && chunk.len() == length => return Ok(chunk),
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(reason)) => return Err(reason),
                None => return Err("the part ended early".to_owned()),
            }
        }
        Ok(self.buffer.split_to(length).freeze())
    }
}

/// Reads a file stripe by stripe from the fewest parts that suffice.
pub struct StripeReader {
    clients: NodeClients,
    manifest: Arc<FileManifest>,
    layout: StripeLayout,
    feeds: Vec<Option<PartFeed>>,
    failed: Vec<bool>,
    next_stripe: u64,
}

impl std::fmt::Debug for StripeReader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("StripeReader").field("file_id", &self.manifest.info.file_id).field("next_stripe", &self.next_stripe).finish()
    }
}

impl StripeReader {
    /// Returns a reader from stripe `first_stripe` that never reads the parts in `excluded`.
    pub fn new(clients: NodeClients, manifest: Arc<FileManifest>, first_stripe: u64, excluded: &[usize]) -> Self {
        let layout = manifest.layout();
        let mut failed = vec![false; TOTAL_PARTS];
        for index in excluded {
            failed[*index] = true;
        }
        for (index, failed_part) in failed.iter_mut().enumerate() {
            if !manifest.parts.iter().any(|part| part.index == index) {
                *failed_part = true;
            }
        }
        Self { clients, manifest, layout, feeds: (0..TOTAL_PARTS).map(|_| None).collect(), failed, next_stripe: first_stripe }
    }

    /// Returns the parts that could not be read (missing, unreachable or corrupt).
    pub fn failed_parts(&self) -> Vec<usize> {
        (0..TOTAL_PARTS).filter(|index| self.failed[*index]).collect()
    }

    /// Returns the 6 data blocks of the next stripe, or `None` after the last.
    pub async fn next_stripe(&mut self) -> Result<Option<(u64, Vec<Bytes>)>, Error> {
        let stripe_index = self.next_stripe;
        if stripe_index >= self.layout.stripe_count() {
            return Ok(None);
        }
        let block_len = self.layout.block_len(stripe_index) as usize;
        let mut blocks: Vec<Option<Bytes>> = vec![None; TOTAL_PARTS];
        loop {
            let present = blocks.iter().filter(|block| block.is_some()).count();
            if present == DATA_PARTS {
                break;
            }
            let wanted: Vec<usize> =
                (0..TOTAL_PARTS).filter(|index| !self.failed[*index] && blocks[*index].is_none()).take(DATA_PARTS - present).collect();
            if present + wanted.len() < DATA_PARTS {
                return Err(Error::DataLoss(format!(
                    "file {}: parts {:?} are unreadable, more than its parity can rebuild",
                    self.manifest.info.file_id,
                    self.failed_parts()
                )));
            }
            for index in &wanted {
                if self.feeds[*index].is_none() {
                    let location = self.manifest.parts.iter().find(|part| part.index == *index).expect("present parts have a location");
                    self.feeds[*index] = Some(PartFeed::open(&self.clients, &self.manifest.info.file_id, location, stripe_index));
                }
            }
            let reads = self
                .feeds
                .iter_mut()
                .enumerate()
                .filter(|(index, _)| wanted.contains(index))
                .map(|(index, feed)| async move { (index, feed.as_mut().expect("opened above").read_exact(block_len).await) });
            for (index, read) in futures::future::join_all(reads).await {
                match read {
                    Ok(block) => blocks[index] = Some(block),
                    Err(reason) => {
                        tracing::warn!(file_id = %self.manifest.info.file_id, part = index, stripe = stripe_index, %reason, "part unreadable; rebuilding from parity");
                        self.failed[index] = true;
                        self.feeds[index] = None;
                    }
                }
            }
        }
        let data = if blocks[..DATA_PARTS].iter().all(Option::is_some) {
            blocks.into_iter().take(DATA_PARTS).flatten().collect()
        } else {
            tokio::task::spawn_blocking(move || restore_data_blocks(&blocks))
                .await
                .map_err(|error| Error::Internal(format!("decoding task: {error}")))?
                .map_err(|error| Error::DataLoss(error.to_string()))?
        };
        self.next_stripe += 1;
        Ok(Some((stripe_index, data)))
    }
}

/// A byte range of a file, `end` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// Streams the file (or `range` of it) into the returned channel. A full download checks
/// the whole-file SHA-256 before sending the last chunk and ends with DATA_LOSS on a
/// mismatch; a range relies on the nodes' per-block checks.
pub fn spawn_download(clients: NodeClients, manifest: Arc<FileManifest>, range: Option<ByteRange>) -> mpsc::Receiver<Result<Bytes, Error>> {
    let (sender, receiver) = mpsc::channel(8);
    tokio::spawn(async move {
        let outcome = stream_file(&clients, &manifest, range, &sender).await;
        match outcome {
            Ok(failed_parts) if !failed_parts.is_empty() && range.is_none() => {
                tokio::spawn(repair_parts(clients, manifest, failed_parts));
            }
            Ok(_) => {}
            Err(error) => {
                let _ = sender.send(Err(error)).await;
            }
        }
    });
    receiver
}

async fn stream_file(
    clients: &NodeClients,
    manifest: &Arc<FileManifest>,
    range: Option<ByteRange>,
    sender: &mpsc::Sender<Result<Bytes, Error>>,
) -> Result<Vec<usize>, Error> {
    let layout = manifest.layout();
    let wanted = range.unwrap_or(ByteRange { start: 0, end: manifest.info.size });
    let first_stripe = layout.stripe_of_offset(wanted.start);
    let mut reader = StripeReader::new(clients.clone(), Arc::clone(manifest), first_stripe, &[]);
    // Each stripe is hashed on a blocking thread while the next one is fetched and sent;
    // only the last chunk waits for the whole-file hash.
    let mut file_hash = range.is_none().then(FileHashInBackground::default);
    let mut held_back: Option<Bytes> = None;
    while let Some((stripe_index, blocks)) = reader.next_stripe().await? {
        let mut position = layout.stripe_start(stripe_index);
        let mut remaining_in_stripe = layout.stripe_data_len(stripe_index) as usize;
        let mut pieces = Vec::with_capacity(DATA_PARTS);
        for block in blocks {
            let taken = block.len().min(remaining_in_stripe);
            remaining_in_stripe -= taken;
            pieces.push((position, block.slice(..taken)));
            position += taken as u64;
        }
        if let Some(file_hash) = &mut file_hash {
            let to_hash: Vec<Bytes> = pieces.iter().map(|(_, piece)| piece.clone()).collect();
            file_hash.add(to_hash).await.map_err(|error| Error::Internal(error.to_string()))?;
        }
        for (piece_start, piece) in pieces {
            let piece_end = piece_start + piece.len() as u64;
            if piece.is_empty() || piece_end <= wanted.start || piece_start >= wanted.end {
                continue;
            }
            let from = wanted.start.saturating_sub(piece_start) as usize;
            let to = (wanted.end.min(piece_end) - piece_start) as usize;
            if let Some(previous) = held_back.replace(piece.slice(from..to)) {
                if sender.send(Ok(previous)).await.is_err() {
                    return Ok(Vec::new());
                }
            }
        }
        if position >= wanted.end {
            break;
        }
    }
    if let Some(file_hash) = file_hash {
        let actual = file_hash.finish_hex().await.map_err(|error| Error::Internal(error.to_string()))?;
        if actual != manifest.info.sha256 {
            tracing::error!(file_id = %manifest.info.file_id, expected = %manifest.info.sha256, %actual, "whole-file hash mismatch");
            return Err(Error::DataLoss(format!("file {} does not match its SHA-256; the download is incomplete", manifest.info.file_id)));
        }
    }
    if let Some(last) = held_back {
        let _ = sender.send(Ok(last)).await;
    }
    Ok(reader.failed_parts())
}

/// Rewrites `failed_parts` of a file on their nodes from the other parts.
pub async fn repair_parts(clients: NodeClients, manifest: Arc<FileManifest>, failed_parts: Vec<usize>) {
    let file_id = manifest.info.file_id.clone();
    let mut writers = Vec::new();
    for index in &failed_parts {
        let Some(location) = manifest.parts.iter().find(|part| part.index == *index) else { continue };
        let Some(address) = &location.address else { continue };
        match clients.start_part_writer(address, &part_id(&file_id, *index), manifest.block_size) {
            Ok(writer) => writers.push((location.clone(), writer)),
            Err(error) => tracing::warn!(%file_id, part = index, %error, "cannot repair the part"),
        }
    }
    if writers.is_empty() {
        return;
    }
    let mut reader = StripeReader::new(clients.clone(), Arc::clone(&manifest), 0, &failed_parts);
    let mut rewritten = Vec::new();
    loop {
        let (_, data) = match reader.next_stripe().await {
            Ok(Some(stripe)) => stripe,
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%file_id, %error, "repair stopped: the other parts are not readable either");
                return;
            }
        };
        let parity = if writers.iter().any(|(location, _)| location.index >= DATA_PARTS) {
            let refs: Vec<&[u8]> = data.iter().map(|block| block.as_ref()).collect();
            match encode_parity(&refs) {
                Ok(parity) => parity,
                Err(error) => {
                    tracing::warn!(%file_id, %error, "repair stopped: parity encoding failed");
                    return;
                }
            }
        } else {
            Vec::new()
        };
        let mut still_writing = Vec::with_capacity(writers.len());
        for (location, mut writer) in writers {
            let block =
                if location.index < DATA_PARTS { data[location.index].clone() } else { Bytes::copy_from_slice(&parity[location.index - DATA_PARTS]) };
            match writer.send(block).await {
                Ok(()) => still_writing.push((location, writer)),
                Err(error) => tracing::warn!(%file_id, part = location.index, %error, "repair of the part failed"),
            }
        }
        writers = still_writing;
    }
    for (location, writer) in writers {
        match writer.commit(location.size, location.sha256.clone()).await {
            Ok(_) => rewritten.push(location.index),
            Err(error) => tracing::warn!(%file_id, part = location.index, %error, "repair of the part failed at commit"),
        }
    }
    tracing::info!(%file_id, parts = ?rewritten, "parts rewritten from parity");
}
