//! `column IN (ids)` as one statement whatever the number of ids.
//!
//! diesel's `eq_any` writes one placeholder per id on SQLite, so its SQL differs with
//! every count and diesel never caches it: each call was parsed and planned anew
//! (profiled: 7 % of the police list's CPU, for a page's persons and reporters). Here the
//! ids travel as one JSON array bound as text, so the SQL never varies and each
//! connection prepares it once.

use diesel::expression::{
    is_aggregate, AppearsOnTable, Expression, SelectableExpression, ValidGrouping,
};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Text};
use diesel::sqlite::Sqlite;
use diesel::QueryResult;

use super::DbConnection;

type Multi = <DbConnection as diesel::Connection>::Backend;

/// `column` is one of the given ids.
#[derive(Debug, Clone)]
pub struct InIds<C> {
    column: C,
    json: String,
}

/// `column IN (ids)`, with the ids bound as one JSON array (see the module docs).
pub fn in_ids<'a, C>(column: C, ids: impl IntoIterator<Item = &'a str>) -> InIds<C> {
    let ids: Vec<&str> = ids.into_iter().collect();
    InIds {
        column,
        // Serialising a list of strings cannot fail.
        json: serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()),
    }
}

impl<C> Expression for InIds<C> {
    type SqlType = Bool;
}

impl<C, QS: ?Sized> AppearsOnTable<QS> for InIds<C> where C: AppearsOnTable<QS> {}

impl<C, QS: ?Sized> SelectableExpression<QS> for InIds<C> where C: SelectableExpression<QS> {}

impl<C> ValidGrouping<()> for InIds<C> {
    type IsAggregate = is_aggregate::Never;
}

impl<C: QueryId> QueryId for InIds<C> {
    type QueryId = InIds<C::QueryId>;
    const HAS_STATIC_QUERY_ID: bool = C::HAS_STATIC_QUERY_ID;
}

impl<C: QueryFragment<Sqlite>> QueryFragment<Sqlite> for InIds<C> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" IN (SELECT value FROM json_each(");
        out.push_bind_param::<Text, _>(&self.json)?;
        out.push_sql("))");
        Ok(())
    }
}

impl<C: QueryFragment<Pg>> QueryFragment<Pg> for InIds<C> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" = ANY(ARRAY(SELECT json_array_elements_text(CAST(");
        out.push_bind_param::<Text, _>(&self.json)?;
        out.push_sql(" AS json))))");
        Ok(())
    }
}

impl<C> QueryFragment<Multi> for InIds<C>
where
    Self: QueryFragment<Sqlite> + QueryFragment<Pg>,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Multi>) -> QueryResult<()> {
        Multi::walk_variant_ast(self, pass)
    }
}
