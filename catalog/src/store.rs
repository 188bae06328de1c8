//! SQLite persistence of table definitions.
//!
//! Each definition is one row holding its JSON form; every change is a single
//! transaction with `synchronous=FULL`, so a definition that was acknowledged
//! survives `kill -9` and power loss, and a failed CREATE leaves nothing behind.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{CatalogError, CatalogResult, TableDefinition, TableName};

const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS external_tables (
    schema_name TEXT NOT NULL,
    table_name  TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (schema_name, table_name)
);";

/// The durable catalog. Operations are short and rare (DDL), so a mutex around one
/// connection is enough; callers on async runtimes may call it directly.
pub struct CatalogStore {
    conn: Mutex<Connection>,
}

impl CatalogStore {
    /// Open (or create) the catalog database at `path`.
    pub fn open(path: &Path) -> CatalogResult<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA_SQL)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Open a private in-memory catalog (tests).
    pub fn in_memory() -> CatalogResult<Self> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA_SQL)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> CatalogResult<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| CatalogError::Storage("catalog lock poisoned".into()))
    }

    /// Every stored definition, ordered by schema then table name.
    pub fn list_tables(&self) -> CatalogResult<Vec<TableDefinition>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT definition FROM external_tables ORDER BY schema_name, table_name")?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        rows.map(|json| Ok(serde_json::from_str(&json?)?)).collect()
    }

    /// The definition of one table, if registered.
    pub fn get_table(&self, name: &TableName) -> CatalogResult<Option<TableDefinition>> {
        let conn = self.conn()?;
        let json: Option<String> = conn
            .query_row(
                "SELECT definition FROM external_tables WHERE schema_name = ?1 AND table_name = ?2",
                params![name.schema, name.table],
                |row| row.get(0),
            )
            .optional()?;
        json.map(|j| Ok(serde_json::from_str(&j)?)).transpose()
    }

    /// Register a new table; fails with [`CatalogError::AlreadyExists`] if the name is taken.
    pub fn insert_table(&self, def: &TableDefinition) -> CatalogResult<()> {
        let json = serde_json::to_string(def)?;
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM external_tables WHERE schema_name = ?1 AND table_name = ?2)",
            params![def.name.schema, def.name.table],
            |row| row.get(0),
        )?;
        if exists {
            return Err(CatalogError::AlreadyExists(def.name.clone()));
        }
        tx.execute(
            "INSERT INTO external_tables (schema_name, table_name, definition) VALUES (?1, ?2, ?3)",
            params![def.name.schema, def.name.table, json],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Remove a table; fails with [`CatalogError::NotFound`] if it is not registered.
    pub fn drop_table(&self, name: &TableName) -> CatalogResult<()> {
        let conn = self.conn()?;
        let n = conn.execute(
            "DELETE FROM external_tables WHERE schema_name = ?1 AND table_name = ?2",
            params![name.schema, name.table],
        )?;
        if n == 0 {
            return Err(CatalogError::NotFound(name.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ColumnDefinition;

    fn sample(table: &str) -> TableDefinition {
        TableDefinition {
            name: TableName::new("public", table),
            connector: "parquet".into(),
            location: "/tmp/x/".into(),
            columns: vec![ColumnDefinition {
                name: "a".into(),
                data_type: "Int64".into(),
                nullable: true,
            }],
            declared_columns: false,
            partition_columns: vec![],
            options: Default::default(),
        }
    }

    #[test]
    fn insert_get_list_drop_round_trip() {
        let store = CatalogStore::in_memory().unwrap();
        store.insert_table(&sample("b")).unwrap();
        store.insert_table(&sample("a")).unwrap();
        let names: Vec<_> = store
            .list_tables()
            .unwrap()
            .into_iter()
            .map(|d| d.name.table)
            .collect();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(
            store.get_table(&TableName::new("public", "a")).unwrap(),
            Some(sample("a"))
        );
        assert!(matches!(
            store.insert_table(&sample("a")),
            Err(CatalogError::AlreadyExists(_))
        ));
        store.drop_table(&TableName::new("public", "a")).unwrap();
        assert!(matches!(
            store.drop_table(&TableName::new("public", "a")),
            Err(CatalogError::NotFound(_))
        ));
        assert_eq!(store.list_tables().unwrap().len(), 1);
    }

    #[test]
    fn definitions_persist_across_reopen() {
        let dir = std::env::temp_dir().join(format!("vivace-cat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("catalog.db");
        let _ = std::fs::remove_file(&path);
        {
            let store = CatalogStore::open(&path).unwrap();
            store.insert_table(&sample("t")).unwrap();
        }
        let store = CatalogStore::open(&path).unwrap();
        assert_eq!(store.list_tables().unwrap(), vec![sample("t")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
