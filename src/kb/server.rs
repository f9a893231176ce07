//! The production backend: a Qdrant server through qdrant-client, one collection per tenant with the
//! same vectors (sparse BM25, and dense when embeddings are configured), payloads and RRF fusion as the
//! embedded shards.

use qdrant_client::qdrant::{
    point_id::PointIdOptions, CreateCollectionBuilder, DeletePointsBuilder, Distance,
    GetPointsBuilder, Modifier, NamedVectors, PointId, PointStruct, PointsIdsList,
    PrefetchQueryBuilder, Query, QueryPointsBuilder, RrfBuilder, SparseVectorParamsBuilder,
    SparseVectorsConfigBuilder, UpsertPointsBuilder, Vector, VectorInput, VectorParamsBuilder,
    VectorsConfigBuilder,
};
use qdrant_client::{Payload, Qdrant};
use qdrant_edge::SparseVector;

use super::{Found, Point, DENSE, RRF_K, VECTOR};

pub struct ServerStore {
    client: Qdrant,
    collection: String,
}

fn found(
    id: Option<PointId>,
    score: f32,
    payload: std::collections::HashMap<String, qdrant_client::qdrant::Value>,
) -> Option<Found> {
    let Some(PointIdOptions::Num(id)) = id?.point_id_options else {
        return None;
    };
    Some(Found {
        id,
        score,
        payload: payload
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::from(v)))
            .collect(),
    })
}

impl ServerStore {
    /// Connects and creates the tenant's collection when it does not exist yet, with dense vectors
    /// of `dim` if given.
    pub async fn open(
        url: &str,
        collection: &str,
        dim: Option<usize>,
    ) -> Result<ServerStore, String> {
        let client = Qdrant::from_url(url).build().map_err(|e| e.to_string())?;
        let exists = client
            .collection_exists(collection)
            .await
            .map_err(|e| e.to_string())?;
        if !exists {
            let mut sparse = SparseVectorsConfigBuilder::default();
            sparse.add_named_vector_params(
                VECTOR,
                SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
            );
            let mut create = CreateCollectionBuilder::new(collection).sparse_vectors_config(sparse);
            if let Some(dim) = dim {
                let mut dense = VectorsConfigBuilder::default();
                dense.add_named_vector_params(
                    DENSE,
                    VectorParamsBuilder::new(dim as u64, Distance::Cosine),
                );
                create = create.vectors_config(dense);
            }
            client
                .create_collection(create)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(ServerStore {
            client,
            collection: collection.to_string(),
        })
    }

    pub async fn upsert(&self, points: Vec<Point>) -> Result<(), String> {
        let points: Vec<PointStruct> = points
            .into_iter()
            .map(|p| {
                let mut vectors = NamedVectors::default().add_vector(
                    VECTOR,
                    Vector::new_sparse(p.vector.indices, p.vector.values),
                );
                if let Some(dense) = p.dense {
                    vectors = vectors.add_vector(DENSE, Vector::new_dense(dense));
                }
                PointStruct::new(p.id, vectors, Payload::from(p.payload))
            })
            .collect();
        self.client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(true))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub async fn delete(&self, ids: &[u64]) -> Result<(), String> {
        let ids = PointsIdsList {
            ids: ids.iter().map(|i| (*i).into()).collect(),
        };
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(ids)
                    .wait(true),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Payloads of stored chunks, for re-embedding them.
    pub async fn payloads(&self, ids: &[u64]) -> Result<Vec<Found>, String> {
        let ids: Vec<PointId> = ids.iter().map(|i| (*i).into()).collect();
        let response = self
            .client
            .get_points(GetPointsBuilder::new(&self.collection, ids).with_payload(true))
            .await
            .map_err(|e| e.to_string())?;
        Ok(response
            .result
            .into_iter()
            .filter_map(|r| found(r.id, 0.0, r.payload))
            .collect())
    }

    /// Same as the embedded shard's query: sparse, dense, or both fused by RRF (k = 60).
    pub async fn query(
        &self,
        sparse: Option<SparseVector>,
        dense: Option<Vec<f32>>,
        candidates: usize,
        limit: usize,
    ) -> Result<Vec<Found>, String> {
        let mut queries: Vec<(Query, &str)> = Vec::new();
        if let Some(s) = sparse {
            queries.push((
                Query::new_nearest(VectorInput::new_sparse(s.indices, s.values)),
                VECTOR,
            ));
        }
        if let Some(d) = dense {
            queries.push((Query::new_nearest(VectorInput::new_dense(d)), DENSE));
        }
        let mut request = QueryPointsBuilder::new(&self.collection)
            .limit(limit as u64)
            .with_payload(true);
        request = match queries.len() {
            0 => return Ok(Vec::new()),
            1 => {
                let (query, using) = queries.pop().expect("one query");
                request.query(query).using(using)
            }
            _ => {
                for (query, using) in queries {
                    request = request.add_prefetch(
                        PrefetchQueryBuilder::default()
                            .query(query)
                            .using(using)
                            .limit(candidates as u64),
                    );
                }
                request.query(Query::new_rrf(RrfBuilder::with_k(RRF_K as u32)))
            }
        };
        let response = self
            .client
            .query(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(response
            .result
            .into_iter()
            .filter_map(|r| found(r.id, r.score, r.payload))
            .collect())
    }

    /// Deletes the collection (after its chunks moved to one for other vectors).
    pub async fn destroy(self) -> Result<(), String> {
        self.client
            .delete_collection(self.collection.as_str())
            .await
            .map(|_| ())
            .map_err(|e| format!("collection {}: {e}", self.collection))
    }
}
