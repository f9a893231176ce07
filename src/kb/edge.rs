//! The embedded backend: one Qdrant Edge shard per tenant, in-process, on disk.

use std::collections::HashMap;
use std::path::Path;

use qdrant_edge::{
    EdgeConfig, EdgeShard, EdgeSparseVectorParams, Modifier, NamedQuery, Payload, PointId,
    PointInsertOperations, PointOperations, PointStructPersisted, QueryEnum, QueryRequest,
    ScoringQuery, SparseVector, UpdateOperation, VectorInternal, VectorPersisted,
    VectorStructPersisted, WithPayloadInterface, WithVector,
};

use super::{Found, Point, VECTOR};

pub struct EdgeStore {
    shard: EdgeShard,
}

impl EdgeStore {
    pub fn open(dir: &Path) -> Result<EdgeStore, String> {
        let shard = if dir.exists() {
            EdgeShard::load(dir, None).map_err(|e| e.to_string())?
        } else {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let config = EdgeConfig {
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
        Ok(EdgeStore { shard })
    }

    pub fn upsert(&self, points: Vec<Point>) -> Result<(), String> {
        let points: Vec<PointStructPersisted> = points
            .into_iter()
            .map(|p| PointStructPersisted {
                id: PointId::NumId(p.id),
                vector: VectorStructPersisted::Named(HashMap::from([(
                    VECTOR.to_string(),
                    VectorPersisted::Sparse(p.vector),
                )])),
                payload: Some(Payload(p.payload.into_iter().collect())),
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

    pub fn query(&self, vector: SparseVector, top: usize) -> Result<Vec<Found>, String> {
        let results = self
            .shard
            .query(QueryRequest {
                prefetches: vec![],
                query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                    query: VectorInternal::from(vector),
                    using: Some(VECTOR.to_string()),
                }))),
                filter: None,
                score_threshold: None,
                limit: top,
                offset: 0,
                params: None,
                with_vector: WithVector::Bool(false),
                with_payload: WithPayloadInterface::Bool(true),
            })
            .map_err(|e| e.to_string())?;
        Ok(results
            .into_iter()
            .filter_map(|r| {
                let PointId::NumId(id) = r.id else {
                    return None;
                };
                Some(Found {
                    id,
                    score: r.score,
                    payload: r.payload?.0.into_iter().collect(),
                })
            })
            .collect())
    }

    pub fn flush(&self) {
        self.shard.flush();
    }
}
