//! The journal of writes in progress: each write is recorded when it starts
//! (so its staging files can be deleted if it never commits) and again at its
//! commit point, in the same transaction that registers the table a
//! `CREATE TABLE … AS` creates. What a journal entry holds is the writer's
//! business (JSON text); the catalog keeps it durable.

use rusqlite::params;

use crate::store::insert_table_in;
use crate::{CatalogError, CatalogResult, CatalogStore, TableDefinition};

impl CatalogStore {
    /// Record a write that starts.
    pub fn begin_write(&self, write_id: &str, journal: &str) -> CatalogResult<()> {
        self.conn()?.execute(
            "INSERT INTO writes (write_id, journal) VALUES (?1, ?2)",
            params![write_id, journal],
        )?;
        Ok(())
    }

    /// The commit point of a write: its journal now says how to publish it,
    /// and `new_table` (a `CREATE TABLE … AS`) is registered, atomically.
    /// Fails with [`CatalogError::AlreadyExists`], changing nothing, if the
    /// new table's name was taken meanwhile.
    pub fn commit_write(
        &self,
        write_id: &str,
        journal: &str,
        new_table: Option<&TableDefinition>,
    ) -> CatalogResult<()> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        if let Some(def) = new_table {
            insert_table_in(&tx, def)?;
        }
        let n = tx.execute(
            "UPDATE writes SET journal = ?2 WHERE write_id = ?1",
            params![write_id, journal],
        )?;
        if n != 1 {
            return Err(CatalogError::Storage(format!(
                "write {write_id} is not in the journal"
            )));
        }
        tx.commit()?;
        Ok(())
    }

    /// Forget a write that was published or discarded.
    pub fn end_write(&self, write_id: &str) -> CatalogResult<()> {
        self.conn()?
            .execute("DELETE FROM writes WHERE write_id = ?1", params![write_id])?;
        Ok(())
    }

    /// Writes left in the journal (by a coordinator that stopped), oldest first.
    pub fn pending_writes(&self) -> CatalogResult<Vec<(String, String)>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT write_id, journal FROM writes ORDER BY write_id")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.map(|r| Ok(r?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::TableName;

    fn table(name: &str) -> TableDefinition {
        TableDefinition {
            name: TableName::new("public", name),
            connector: "parquet".into(),
            location: "/tmp/t/".into(),
            columns: vec![],
            declared_columns: false,
            partition_columns: vec![],
            options: BTreeMap::new(),
        }
    }

    #[test]
    fn a_commit_registers_its_table_or_changes_nothing() {
        let store = CatalogStore::in_memory().unwrap();
        store.begin_write("w1", "started").unwrap();
        store.begin_write("w2", "started").unwrap();
        store
            .commit_write("w1", "committed", Some(&table("t")))
            .unwrap();
        assert!(
            store
                .get_table(&TableName::new("public", "t"))
                .unwrap()
                .is_some()
        );
        // The name is taken: the second commit changes nothing.
        assert!(matches!(
            store.commit_write("w2", "committed", Some(&table("t"))),
            Err(CatalogError::AlreadyExists(_))
        ));
        assert_eq!(
            store.pending_writes().unwrap(),
            vec![
                ("w1".to_string(), "committed".to_string()),
                ("w2".to_string(), "started".to_string())
            ]
        );
        store.end_write("w1").unwrap();
        store.end_write("w2").unwrap();
        assert!(store.pending_writes().unwrap().is_empty());
    }
}
