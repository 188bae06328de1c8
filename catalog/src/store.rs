//! SQLite persistence of table, external schema and view definitions (and,
//! in [`crate::journal`], of writes in progress).
//!
//! Each definition is one row holding its JSON form; every change is a single
//! transaction with `synchronous=FULL`, so a definition that was acknowledged
//! survives `kill -9` and power loss, and a failed CREATE leaves nothing behind.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    CatalogError, CatalogResult, SchemaDefinition, TableDefinition, TableName, ViewDefinition,
};

const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS external_tables (
    schema_name TEXT NOT NULL,
    table_name  TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (schema_name, table_name)
);
CREATE TABLE IF NOT EXISTS external_schemas (
    schema_name TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS views (
    schema_name TEXT NOT NULL,
    view_name   TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (schema_name, view_name)
);
CREATE TABLE IF NOT EXISTS writes (
    write_id   TEXT PRIMARY KEY,
    journal    TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
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

    pub(crate) fn conn(&self) -> CatalogResult<std::sync::MutexGuard<'_, Connection>> {
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
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        insert_table_in(&tx, def)?;
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

impl CatalogStore {
    /// Every stored external schema, ordered by name.
    pub fn list_schemas(&self) -> CatalogResult<Vec<SchemaDefinition>> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare("SELECT definition FROM external_schemas ORDER BY schema_name")?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        rows.map(|json| Ok(serde_json::from_str(&json?)?)).collect()
    }

    /// The definition of one external schema, if registered.
    pub fn get_schema(&self, name: &str) -> CatalogResult<Option<SchemaDefinition>> {
        let conn = self.conn()?;
        let json: Option<String> = conn
            .query_row(
                "SELECT definition FROM external_schemas WHERE schema_name = ?1",
                params![name],
                |row| row.get(0),
            )
            .optional()?;
        json.map(|j| Ok(serde_json::from_str(&j)?)).transpose()
    }

    /// Register a new external schema; fails with [`CatalogError::SchemaExists`]
    /// if the name is taken.
    pub fn insert_schema(&self, def: &SchemaDefinition) -> CatalogResult<()> {
        let json = serde_json::to_string(def)?;
        let conn = self.conn()?;
        let inserted = conn.execute(
            "INSERT INTO external_schemas (schema_name, definition) VALUES (?1, ?2) \
             ON CONFLICT (schema_name) DO NOTHING",
            params![def.name, json],
        )?;
        if inserted == 0 {
            return Err(CatalogError::SchemaExists(def.name.clone()));
        }
        Ok(())
    }

    /// Replace the tables of a registered schema (`REFRESH EXTERNAL SCHEMA`).
    pub fn replace_schema(&self, def: &SchemaDefinition) -> CatalogResult<()> {
        let json = serde_json::to_string(def)?;
        let conn = self.conn()?;
        let n = conn.execute(
            "UPDATE external_schemas SET definition = ?2 WHERE schema_name = ?1",
            params![def.name, json],
        )?;
        if n == 0 {
            return Err(CatalogError::SchemaNotFound(def.name.clone()));
        }
        Ok(())
    }

    /// Remove an external schema; fails with [`CatalogError::SchemaNotFound`].
    pub fn drop_schema(&self, name: &str) -> CatalogResult<()> {
        let conn = self.conn()?;
        let n = conn.execute(
            "DELETE FROM external_schemas WHERE schema_name = ?1",
            params![name],
        )?;
        if n == 0 {
            return Err(CatalogError::SchemaNotFound(name.to_string()));
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
                source_type: None,
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
    fn schemas_insert_replace_drop() {
        let store = CatalogStore::in_memory().unwrap();
        let mut schema = SchemaDefinition {
            name: "app".into(),
            connector: "postgres".into(),
            location: "postgres://u@h/d".into(),
            options: Default::default(),
            tables: vec![sample("a")],
        };
        store.insert_schema(&schema).unwrap();
        assert!(matches!(
            store.insert_schema(&schema),
            Err(CatalogError::SchemaExists(_))
        ));
        schema.tables.push(sample("b"));
        store.replace_schema(&schema).unwrap();
        assert_eq!(store.get_schema("app").unwrap(), Some(schema.clone()));
        assert_eq!(store.list_schemas().unwrap(), vec![schema]);
        store.drop_schema("app").unwrap();
        assert!(matches!(
            store.drop_schema("app"),
            Err(CatalogError::SchemaNotFound(_))
        ));
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

/// Insert `def` within `tx`; [`CatalogError::AlreadyExists`] if the name is taken.
pub(crate) fn insert_table_in(
    tx: &rusqlite::Transaction<'_>,
    def: &TableDefinition,
) -> CatalogResult<()> {
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
        params![def.name.schema, def.name.table, serde_json::to_string(def)?],
    )?;
    Ok(())
}

impl CatalogStore {
    /// Every stored view, ordered by schema then name (creation order within
    /// one name is irrelevant: a view is planned when used).
    pub fn list_views(&self) -> CatalogResult<Vec<ViewDefinition>> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare("SELECT definition FROM views ORDER BY schema_name, view_name")?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        rows.map(|json| Ok(serde_json::from_str(&json?)?)).collect()
    }

    /// Store a view; with `replace`, over one of the same name, otherwise
    /// failing with [`CatalogError::AlreadyExists`] if the name is taken.
    pub fn insert_view(&self, def: &ViewDefinition, replace: bool) -> CatalogResult<()> {
        let json = serde_json::to_string(def)?;
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM views WHERE schema_name = ?1 AND view_name = ?2)",
            params![def.name.schema, def.name.table],
            |row| row.get(0),
        )?;
        if exists && !replace {
            return Err(CatalogError::AlreadyExists(def.name.clone()));
        }
        tx.execute(
            "INSERT OR REPLACE INTO views (schema_name, view_name, definition) VALUES (?1, ?2, ?3)",
            params![def.name.schema, def.name.table, json],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Remove a view; fails with [`CatalogError::NotFound`] if there is none.
    pub fn drop_view(&self, name: &TableName) -> CatalogResult<()> {
        let conn = self.conn()?;
        let n = conn.execute(
            "DELETE FROM views WHERE schema_name = ?1 AND view_name = ?2",
            params![name.schema, name.table],
        )?;
        if n == 0 {
            return Err(CatalogError::NotFound(name.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod view_tests {
    use super::*;

    fn view(name: &str, query: &str) -> ViewDefinition {
        ViewDefinition {
            name: TableName::new("public", name),
            query: query.into(),
            columns: vec![],
            output: vec![],
        }
    }

    #[test]
    fn views_are_stored_replaced_and_dropped() {
        let store = CatalogStore::in_memory().unwrap();
        store.insert_view(&view("v", "SELECT 1"), false).unwrap();
        assert!(matches!(
            store.insert_view(&view("v", "SELECT 2"), false),
            Err(CatalogError::AlreadyExists(_))
        ));
        assert_eq!(store.list_views().unwrap()[0].query, "SELECT 1");
        store.insert_view(&view("v", "SELECT 2"), true).unwrap();
        assert_eq!(store.list_views().unwrap(), vec![view("v", "SELECT 2")]);
        store.drop_view(&TableName::new("public", "v")).unwrap();
        assert!(store.list_views().unwrap().is_empty());
        assert!(matches!(
            store.drop_view(&TableName::new("public", "v")),
            Err(CatalogError::NotFound(_))
        ));
    }
}
