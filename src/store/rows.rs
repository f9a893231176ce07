//! Multi-row inserts. One `INSERT … VALUES (…), (…)` for a conversation's rows of a table instead of a
//! statement a row: on SQLite each statement is a round trip to the connection's thread, on MariaDB to
//! the server, and a conversation writes dozens of rows.

use super::StoreError;

/// A bound value of a row.
#[derive(Debug, Clone)]
pub(super) enum Value {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Real(f64),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}

impl Value {
    fn size(&self) -> usize {
        match self {
            Value::Text(s) => s.len(),
            Value::OptText(s) => s.as_ref().map_or(0, String::len),
            _ => 8,
        }
    }
}

/// Rows a statement carries at most, values it binds at most (SQLite's limit is 32,766; MariaDB's
/// 65,535), and bytes it binds before a new statement starts (under MariaDB's 16 MiB packet).
const MAX_ROWS: usize = 500;
const MAX_VALUES: usize = 30_000;
const MAX_BYTES: usize = 4 << 20;

/// Runs `head VALUES (…), (…)…` (or `head` with its ` VALUES __` filled in) for the rows, in as many statements as the limits take. Returns the
/// rows affected (an `INSERT IGNORE` skips existing keys). Every row has as many values as `head` names
/// columns.
pub(super) async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    head: &str,
    rows: Vec<Vec<Value>>,
) -> Result<u64, StoreError> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(0);
    };
    let placeholders = format!("({})", vec!["?"; width].join(", "));
    let per_statement = MAX_ROWS.min(MAX_VALUES / width).max(1);
    let mut affected = 0;
    let mut rest = rows.as_slice();
    while !rest.is_empty() {
        let mut take = 0;
        let mut bytes = 0;
        while take < rest.len() && take < per_statement && (take == 0 || bytes < MAX_BYTES) {
            bytes += rest[take].iter().map(Value::size).sum::<usize>();
            take += 1;
        }
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let values = vec![placeholders.as_str(); take].join(", ");
        // A head may place the values itself (`… VALUES __ ON CONFLICT …`).
        let sql = match head.contains(" VALUES __") {
            true => head.replacen(" VALUES __", &format!(" VALUES {values}"), 1),
            false => format!("{head} VALUES {values}"),
        };
        let mut q = sqlx::query(&sql);
        for row in chunk {
            debug_assert_eq!(row.len(), width, "{head}");
            for v in row {
                q = match v {
                    Value::Text(s) => q.bind(s.as_str()),
                    Value::OptText(s) => q.bind(s.as_deref()),
                    Value::Int(i) => q.bind(*i),
                    Value::OptInt(i) => q.bind(*i),
                    Value::Real(x) => q.bind(*x),
                };
            }
        }
        affected += q.execute(&mut **tx).await?.rows_affected();
    }
    Ok(affected)
}

/// `head WHERE tenant = ? AND column IN (…)tail`, a few hundred values a statement, every row.
pub(super) async fn select_in(
    conn: &mut sqlx::AnyConnection,
    head: &str,
    column: &str,
    tenant: &str,
    values: &[&str],
    tail: &str,
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let mut rows = Vec::new();
    for chunk in values.chunks(500) {
        let sql = format!(
            "{head} WHERE tenant = ? AND {column} IN ({}){tail}",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&sql).bind(tenant);
        for v in chunk {
            q = q.bind(*v);
        }
        rows.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// `DELETE FROM table WHERE tenant = ? AND column IN (…) [AND clause]`, a few hundred values a
/// statement: each bounded by the index on (tenant, column), with no subquery for MariaDB to turn into
/// a scan.
pub(super) async fn delete_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    column: &str,
    tenant: &str,
    values: &[&str],
    and: Option<(&str, &str)>,
) -> Result<(), StoreError> {
    for chunk in values.chunks(500) {
        let mut sql = format!(
            "DELETE FROM {table} WHERE tenant = ? AND {column} IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        if let Some((clause, _)) = and {
            sql.push_str(" AND ");
            sql.push_str(clause);
        }
        let mut q = sqlx::query(&sql).bind(tenant);
        for v in chunk {
            q = q.bind(*v);
        }
        if let Some((_, value)) = and {
            q = q.bind(value);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
