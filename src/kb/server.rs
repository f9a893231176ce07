//! The production backend: a Qdrant server through qdrant-client, one collection per tenant with the
//! same sparse BM25 vectors and payloads as the embedded shards.

use qdrant_client::qdrant::{
    point_id::PointIdOptions, CreateCollectionBuilder, DeletePointsBuilder, Modifier, NamedVectors,
    PointStruct, PointsIdsList, Query, QueryPointsBuilder, SparseVectorParamsBuilder,
    SparseVectorsConfigBuilder, UpsertPointsBuilder, Vector, VectorInput,
};
use qdrant_client::{Payload, Qdrant};
use qdrant_edge::SparseVector;

use super::{Found, Point, VECTOR};

pub struct ServerStore {
    client: Qdrant,
    collection: String,
}

impl ServerStore {
    /// Connects and creates the tenant's collection when it does not exist yet.
    pub async fn open(url: &str, collection: &str) -> Result<ServerStore, String> {
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
            client
                .create_collection(
                    CreateCollectionBuilder::new(collection).sparse_vectors_config(sparse),
                )
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
                PointStruct::new(
                    p.id,
                    NamedVectors::default().add_vector(
                        VECTOR,
                        Vector::new_sparse(p.vector.indices, p.vector.values),
                    ),
                    Payload::from(p.payload),
                )
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

    pub async fn query(&self, vector: SparseVector, top: usize) -> Result<Vec<Found>, String> {
        let response = self
            .client
            .query(
                QueryPointsBuilder::new(&self.collection)
                    .query(Query::new_nearest(VectorInput::new_sparse(
                        vector.indices,
                        vector.values,
                    )))
                    .using(VECTOR)
                    .limit(top as u64)
                    .with_payload(true),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(response
            .result
            .into_iter()
            .filter_map(|r| {
                let Some(PointIdOptions::Num(id)) = r.id?.point_id_options else {
                    return None;
                };
                Some(Found {
                    id,
                    score: r.score,
                    payload: r
                        .payload
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::from(v)))
                        .collect(),
                })
            })
            .collect())
    }
}
