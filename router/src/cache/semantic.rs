//! The semantic index of this replica: per partition (scope, endpoint and the request without its
//! last user turn, hashed), an HNSW graph (`hnsw_rs`, cosine distance) of the last user turns'
//! embeddings, each pointing at the exact key its answer is stored under in the backend. The
//! partitions share one byte bound (least recently used go first); a partition holds at most
//! a set number of live points ([`MAX_POINTS`] by default) (expired ones are dropped when it is rebuilt, then the oldest).

use std::{
    sync::{Arc, RwLock},
    time::Instant,
};

use hnsw_rs::prelude::{DistCosine, Hnsw};

/// Most points one partition holds by default.
pub const MAX_POINTS: usize = 4096;
/// Neighbours considered per lookup (the nearest that has not expired wins).
const NEIGHBOURS: usize = 4;
/// Search breadth.
const EF_SEARCH: usize = 32;

struct Point {
    key: String,
    expires: Instant,
    vector: Vec<f32>,
}

struct Graph {
    hnsw: Hnsw<'static, f32, DistCosine>,
    points: Vec<Point>,
}

impl Graph {
    fn new(points: Vec<Point>, max_points: usize) -> Graph {
        let hnsw = Hnsw::new(16, max_points, 16, 64, DistCosine {});
        for (i, p) in points.iter().enumerate() {
            hnsw.insert_slice((&p.vector, i));
        }
        Graph { hnsw, points }
    }

    fn dimensions(&self) -> Option<usize> {
        self.points.first().map(|p| p.vector.len())
    }
}

/// One partition's graph.
struct Partition(RwLock<Graph>);

impl Partition {
    fn bytes(&self) -> u32 {
        let g = self.0.read().expect("not poisoned");
        let per_point = g.dimensions().unwrap_or(0) * 4 * 2 + 96;
        u32::try_from(g.points.len() * per_point).unwrap_or(u32::MAX)
    }
}

/// The index of one replica.
pub struct Index {
    partitions: moka::sync::Cache<String, Arc<Partition>>,
    max_points: usize,
}

impl Index {
    /// An empty index of at most about `max_bytes`, `max_points` per partition.
    pub fn new(max_bytes: u64, max_points: usize) -> Index {
        Index {
            max_points: max_points.max(2),
            partitions: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, p: &Arc<Partition>| {
                    p.bytes()
                        .saturating_add(u32::try_from(k.len()).unwrap_or(0))
                })
                .build(),
        }
    }

    /// The exact key of the nearest unexpired point of `partition` to `vector` and its cosine
    /// similarity, if the partition has one.
    pub fn nearest(&self, partition: &str, vector: &[f32], now: Instant) -> Option<(String, f32)> {
        let p = self.partitions.get(partition)?;
        let g = p.0.read().expect("not poisoned");
        if g.dimensions() != Some(vector.len()) {
            return None;
        }
        let mut found = g.hnsw.search(vector, NEIGHBOURS, EF_SEARCH);
        found.sort_by(|a, b| a.distance.total_cmp(&b.distance));
        found.into_iter().find_map(|n| {
            let point = g.points.get(n.d_id)?;
            (point.expires > now).then(|| (point.key.clone(), 1.0 - n.distance))
        })
    }

    /// Adds `vector` to `partition`, pointing at `key` until `expires`. Returns how many points
    /// were dropped for room.
    pub fn insert(
        &self,
        partition: &str,
        vector: Vec<f32>,
        key: String,
        expires: Instant,
    ) -> usize {
        let now = Instant::now();
        let p = self.partitions.get_with(partition.to_string(), || {
            Arc::new(Partition(RwLock::new(Graph::new(
                Vec::new(),
                self.max_points,
            ))))
        });
        let dropped = {
            let mut g = p.0.write().expect("not poisoned");
            let mut dropped = 0;
            if g.dimensions().is_some_and(|d| d != vector.len()) {
                // Another embedding model: the old points cannot be compared with the new.
                dropped = g.points.len();
                *g = Graph::new(Vec::new(), self.max_points);
            } else if g.points.len() >= self.max_points {
                let mut live: Vec<Point> = std::mem::take(&mut g.points)
                    .into_iter()
                    .filter(|p| p.expires > now)
                    .collect();
                if live.len() >= self.max_points {
                    live.drain(..live.len() / 2);
                }
                dropped = self.max_points - live.len();
                *g = Graph::new(live, self.max_points);
            }
            let id = g.points.len();
            g.hnsw.insert_slice((&vector, id));
            g.points.push(Point {
                key,
                expires,
                vector,
            });
            dropped
        };
        // Inserted again so the byte bound sees the partition's new size.
        self.partitions.insert(partition.to_string(), p);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_nearest_live_point_is_found_within_its_partition() {
        let index = Index::new(1 << 20, MAX_POINTS);
        let later = Instant::now() + Duration::from_secs(60);
        index.insert("p", vec![1.0, 0.0, 0.0], "a".into(), later);
        index.insert("p", vec![0.0, 1.0, 0.0], "b".into(), later);
        let (key, sim) = index
            .nearest("p", &[0.9, 0.1, 0.0], Instant::now())
            .unwrap();
        assert_eq!(key, "a");
        assert!(sim > 0.9, "{sim}");
        assert!(
            index
                .nearest("q", &[0.9, 0.1, 0.0], Instant::now())
                .is_none()
        );
        assert!(index.nearest("p", &[1.0, 0.0], Instant::now()).is_none());
        // Once expired, a point is never the answer.
        assert!(index.nearest("p", &[1.0, 0.0, 0.0], later).is_none());
    }

    #[test]
    fn a_full_partition_drops_expired_then_oldest_points() {
        let max = 64;
        let index = Index::new(1 << 30, max);
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut dropped = 0;
        for i in 0..max {
            // The first ten have expired by the time the partition is full.
            let expires = if i < 10 { now } else { later };
            let v = vec![1.0, i as f32 / max as f32];
            dropped += index.insert("p", v, format!("k{i}"), expires);
        }
        assert_eq!(dropped, 0);
        dropped += index.insert("p", vec![1.0, 1.0], format!("k{max}"), later);
        assert_eq!(dropped, 10, "the expired ones made room");
        let (key, _) = index.nearest("p", &[1.0, 1.0], Instant::now()).unwrap();
        assert_eq!(key, format!("k{max}"));
    }
}
