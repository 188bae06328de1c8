//! PostgreSQL and Redshift: one connector, two flavours. Redshift speaks
//! PostgreSQL's protocol; it differs in its URL scheme and port, and in the SQL
//! it is sent (its dialect, and what of a sub-plan it can evaluate with the
//! meaning DataFusion gives it: [`super::redshift`]).

use std::sync::Arc;

use datafusion::error::Result as DFResult;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::unparser::dialect::Dialect;

use super::dialect::PostgresDialect;
use super::redshift::{RedshiftDialect, split_for_redshift};

/// What sets one flavour of the PostgreSQL connector apart.
pub struct Flavor {
    /// The `STORED AS` / `FROM` name, lower case.
    pub name: &'static str,
    /// The name users read in messages.
    pub display: &'static str,
    /// URL schemes of its `LOCATION`s, the first the one shown in examples.
    pub schemes: &'static [&'static str],
    /// The port when the URL gives none.
    pub default_port: u16,
    dialect: fn() -> Arc<dyn Dialect>,
    fit: fn(LogicalPlan) -> DFResult<LogicalPlan>,
}

impl Flavor {
    /// The dialect pushed-down statements are written in.
    pub fn dialect(&self) -> Arc<dyn Dialect> {
        (self.dialect)()
    }

    /// A federated sub-plan reshaped so that the server runs only what it can
    /// (the rest stays in Vivace); unchanged for PostgreSQL.
    pub fn fit(&self, plan: LogicalPlan) -> DFResult<LogicalPlan> {
        (self.fit)(plan)
    }

    /// The flavour whose `STORED AS` name is `name`.
    pub fn by_name(name: &str) -> Option<&'static Flavor> {
        [&POSTGRES, &REDSHIFT].into_iter().find(|f| f.name == name)
    }
}

impl PartialEq for Flavor {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Flavor {}

impl std::fmt::Debug for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.display)
    }
}

/// `STORED AS POSTGRES`, `postgres://` or `postgresql://` locations, port 5432.
pub static POSTGRES: Flavor = Flavor {
    name: "postgres",
    display: "PostgreSQL",
    schemes: &["postgres", "postgresql"],
    default_port: 5432,
    dialect: || Arc::new(PostgresDialect),
    fit: Ok,
};

/// `STORED AS REDSHIFT`, `redshift://` locations, port 5439.
pub static REDSHIFT: Flavor = Flavor {
    name: "redshift",
    display: "Redshift",
    schemes: &["redshift"],
    default_port: 5439,
    dialect: || Arc::new(RedshiftDialect),
    fit: split_for_redshift,
};
