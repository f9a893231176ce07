//! The embedded backend: one Qdrant Edge shard per tenant, in-process, on disk. With dense vectors, a
//! hybrid query is Qdrant's own: a sparse and a dense prefetch fused by Reciprocal Rank Fusion.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qdrant_edge::{
    Distance, EdgeConfig, EdgeShard, EdgeSparseVectorParams, EdgeVectorParams, Fusion, Modifier,
    NamedQuery, Payload, PointId, PointInsertOperations, PointOperations, PointStructPersisted,
    Prefetch, QueryEnum, QueryRequest, ScoringQuery, SparseVector, UpdateOperation, VectorInternal,
    VectorPersisted, VectorStructPersisted, WithPayloadInterface, WithVector,
};

use super::{Found, Point, DENSE, RRF_K, VECTOR};

pub struct EdgeStore {
    shard: EdgeShard,
    dir: PathBuf,
}

impl EdgeStore {
    /// Opens the shard in `dir`, or creates it: sparse vectors, and dense ones of `dim` if given.
    pub fn open(dir: &Path, dim: Option<usize>) -> Result<EdgeStore, String> {
        let shard = if dir.exists() {
            EdgeShard::load(dir, None).map_err(|e| e.to_string())?
        } else {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let config = EdgeConfig {
                vectors: dim
                    .map(|d| {
                        (
                            DENSE.to_string(),
                            EdgeVectorParams::builder(d, Distance::Cosine).build(),
                        )
                    })
                    .into_iter()
                    .collect(),
                sparse_vectors: HashMap::from([(
                    VECTOR.to_string(),
                    EdgeSparseVectorParams {
                        modifier: Some(Modifier::Idf),
                        ..Default::default()
                    },
                )]),
                ..Default::default()
            };
            EdgeShard::new(dir, config).map_err(|e| e.to_string())?
        };
        Ok(EdgeStore {
            shard,
            dir: dir.to_path_buf(),
        })
    }

    pub fn upsert(&self, points: Vec<Point>) -> Result<(), String> {
        let points: Vec<PointStructPersisted> = points
            .into_iter()
            .map(|p| {
                let mut vectors =
                    HashMap::from([(VECTOR.to_string(), VectorPersisted::Sparse(p.vector))]);
                if let Some(dense) = p.dense {
                    vectors.insert(DENSE.to_string(), VectorPersisted::Dense(dense));
                }
                PointStructPersisted {
                    id: PointId::NumId(p.id),
                    vector: VectorStructPersisted::Named(vectors),
                    payload: Some(Payload(p.payload.into_iter().collect())),
                }
            })
            .collect();
        self.shard
            .update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
            ))
            .map_err(|e| e.to_string())
    }

    pub fn delete(&self, ids: &[u64]) -> Result<(), String> {
        let ids = ids.iter().map(|i| PointId::NumId(*i)).collect();
        self.shard
            .update(UpdateOperation::PointOperation(
                PointOperations::DeletePoints { ids },
            ))
            .map_err(|e| e.to_string())
    }

    /// Payloads of stored chunks, for re-embedding them.
    pub fn payloads(&self, ids: &[u64]) -> Result<Vec<Found>, String> {
        let ids: Vec<PointId> = ids.iter().map(|i| PointId::NumId(*i)).collect();
        let records = self
            .shard
            .retrieve(&ids, Some(WithPayloadInterface::Bool(true)), None)
            .map_err(|e| e.to_string())?;
        Ok(records
            .into_iter()
            .filter_map(|r| found(r.id, 0.0, r.payload))
            .collect())
    }

    /// The best `limit` chunks for a sparse query, a dense one, or both fused by RRF (k = 60) over
    /// the best `candidates` of each.
    pub fn query(
        &self,
        sparse: Option<SparseVector>,
        dense: Option<Vec<f32>>,
        candidates: usize,
        limit: usize,
    ) -> Result<Vec<Found>, String> {
        let nearest = |query: VectorInternal, using: &str| {
            ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                query,
                using: Some(using.to_string()),
            }))
        };
        let mut queries: Vec<ScoringQuery> = Vec::new();
        if let Some(s) = sparse {
            queries.push(nearest(VectorInternal::from(s), VECTOR));
        }
        if let Some(d) = dense {
            queries.push(nearest(VectorInternal::from(d), DENSE));
        }
        let (prefetches, query) = match queries.len() {
            0 => return Ok(Vec::new()),
            1 => (Vec::new(), queries.pop()),
            _ => (
                queries
                    .into_iter()
                    .map(|q| Prefetch {
                        prefetches: vec![],
                        query: Some(q),
                        limit: candidates,
                        params: None,
                        filter: None,
                        score_threshold: None,
                    })
                    .collect(),
                Some(ScoringQuery::Fusion(Fusion::Rrf {
                    k: RRF_K,
                    weights: None,
                })),
            ),
        };
        let results = self
            .shard
            .query(QueryRequest {
                prefetches,
                query,
                filter: None,
                score_threshold: None,
                limit,
                offset: 0,
                params: None,
                with_vector: WithVector::Bool(false),
                with_payload: WithPayloadInterface::Bool(true),
            })
            .map_err(|e| e.to_string())?;
        Ok(results
            .into_iter()
            .filter_map(|r| found(r.id, r.score, r.payload))
            .collect())
    }

    pub fn flush(&self) {
        self.shard.flush();
    }

    /// Deletes the shard from disk (after its chunks moved to a shard for other vectors).
    pub fn destroy(self) -> Result<(), String> {
        let dir = self.dir.clone();
        drop(self.shard);
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))
    }
}

/// A stored chunk as the shard returns it. huixi only writes numeric ids with a payload; anything
/// else is not one of its chunks.
fn found(id: PointId, score: f32, payload: Option<Payload>) -> Option<Found> {
    let PointId::NumId(id) = id else {
        return None;
    };
    Some(Found {
        id,
        score,
        payload: payload?.0.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(id: u64, term: u32, weight: f32, dense: [f32; 2]) -> Point {
        Point {
            id,
            vector: SparseVector {
                indices: vec![term],
                values: vec![weight],
            },
            dense: Some(dense.to_vec()),
            payload: serde_json::json!({"n": id}).as_object().unwrap().clone(),
        }
    }

    #[test]
    fn sparse_and_dense_rankings_are_fused_with_rrf_k_60() {
        let dir = tempfile::tempdir().unwrap();
        let store = EdgeStore::open(&dir.path().join("shard"), Some(2)).unwrap();
        // Sparse (term 1): 1 before 2, 3 absent. Dense (towards [1, 0]): 3, then 1, then 2.
        store
            .upsert(vec![
                point(1, 1, 3.0, [1.0, 0.2]),
                point(2, 1, 1.0, [0.0, 1.0]),
                point(3, 2, 1.0, [1.0, 0.0]),
            ])
            .unwrap();
        let sparse = SparseVector {
            indices: vec![1],
            values: vec![1.0],
        };
        let found = store
            .query(Some(sparse.clone()), Some(vec![1.0, 0.0]), 10, 10)
            .unwrap();
        let got: Vec<(u64, f32)> = found.iter().map(|f| (f.id, f.score)).collect();
        // Qdrant's RRF adds 1 / (k + rank - 1) for each list a point is in, rank counted from 1.
        let rrf = |ranks: &[usize]| ranks.iter().map(|r| 1.0 / (60 + r - 1) as f32).sum::<f32>();
        // With k = 60, being second and third in both lists beats being first in one.
        let want = [(1, rrf(&[1, 2])), (2, rrf(&[2, 3])), (3, rrf(&[1]))];
        assert_eq!(got.len(), 3, "{got:?}");
        for ((id, score), (want_id, want_score)) in got.iter().zip(want) {
            assert_eq!(*id, want_id, "{got:?}");
            assert!((score - want_score).abs() < 1e-6, "{got:?}");
        }
        // One list alone is a plain nearest-neighbour query.
        let only_sparse = store.query(Some(sparse), None, 10, 10).unwrap();
        let ids: Vec<u64> = only_sparse.iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![1, 2]);
        assert!(only_sparse[0].score > 1.0, "a BM25 score, not a fused one");
    }
}
