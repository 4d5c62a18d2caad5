//! Placement and fill: nodes registered while uploads run break no upload, and after 2,000
//! uploads with 3 nodes added half-way, the rebalancer brings every node within 15% of the
//! least used one.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;

use super::files_support::{random_bytes, FilesPlatform, TestNode};
use super::helpers::wait_until;

#[tokio::test]
async fn nodes_registered_during_uploads_fail_no_upload() {
    let (platform, _nodes) = FilesPlatform::start_with_nodes(6, &[]).await;
    let platform = Arc::new(platform);
    let uploads = tokio::spawn({
        let platform = Arc::clone(&platform);
        async move {
            futures::stream::iter(0..60)
                .map(|index| {
                    let platform = Arc::clone(&platform);
                    let size = rand::rng().random_range(0..300_000);
                    async move { platform.upload_visible(&format!("during-{index}.bin"), random_bytes(size)).await }
                })
                .buffer_unordered(6)
                .collect::<Vec<_>>()
                .await
        }
    });
    let mut added = Vec::new();
    for _ in 0..3 {
        let node = TestNode::start().await;
        platform.register(&node).await;
        added.push(node);
    }
    let outcomes = uploads.await.expect("upload task");
    let failures: Vec<String> = outcomes.iter().filter_map(|outcome| outcome.as_ref().err().map(ToString::to_string)).collect();
    assert!(failures.is_empty(), "uploads failed while nodes joined: {failures:?}");
    for outcome in outcomes {
        let stored = outcome.expect("checked above");
        assert!(stored.fault_tolerance >= 1);
        let (_, bytes) = platform.download(&stored.file_id).await.expect("every upload reads back");
        assert_eq!(bytes.len() as u64, stored.size);
    }
}

#[tokio::test]
async fn two_thousand_uploads_fill_every_node_evenly() {
    let (platform, mut nodes) = FilesPlatform::start_with_nodes(6, &[]).await;
    let platform = Arc::new(platform);
    let upload_batch = |range: std::ops::Range<usize>| {
        let platform = Arc::clone(&platform);
        async move {
            let failures = futures::stream::iter(range)
                .map(|index| {
                    let platform = Arc::clone(&platform);
                    let size = rand::rng().random_range(1..48_000);
                    async move { platform.upload(&format!("fill-{index}.bin"), random_bytes(size)).await }
                })
                .buffer_unordered(8)
                .filter(|outcome| std::future::ready(outcome.is_err()))
                .count()
                .await;
            assert_eq!(failures, 0, "no upload fails");
        }
    };
    upload_batch(0..1000).await;
    for _ in 0..3 {
        let node = TestNode::start().await;
        platform.register(&node).await;
        nodes.push(node);
    }
    upload_batch(1000..2000).await;

    let spread = std::sync::Mutex::new(f64::MAX);
    let balanced = wait_until(Duration::from_secs(240), || {
        let (nodes, spread) = (&nodes, &spread);
        async move {
            let used: Vec<u64> = futures::future::join_all(nodes.iter().map(|node| node.used_bytes())).await;
            let (least, most) = (*used.iter().min().expect("nodes"), *used.iter().max().expect("nodes"));
            let current = most as f64 / least.max(1) as f64 - 1.0;
            *spread.lock().expect("spread lock") = current;
            current <= 0.15
        }
    })
    .await;
    let spread = *spread.lock().expect("spread lock");
    println!("fill spread after 2,000 uploads on 6 + 3 nodes: {:.1}%", spread * 100.0);
    assert!(balanced, "the most used node holds {:.1}% more than the least used", spread * 100.0);
}
