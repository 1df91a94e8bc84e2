//! The Glue catalog of the lake and its tables, created on first use.

use std::collections::HashMap;

use iceberg::spec::TableProperties;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_glue::{
    AWS_ACCESS_KEY_ID, AWS_REGION_NAME, AWS_SECRET_ACCESS_KEY, GLUE_CATALOG_PROP_URI,
    GLUE_CATALOG_PROP_WAREHOUSE, GlueCatalog, GlueCatalogBuilder,
};

use crate::LakeError;
use crate::schema::TableDef;

/// Where the lake is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeConfig {
    /// The lake bucket; tables live under `s3://<bucket>/iceberg/<table>`.
    pub bucket: String,
    /// The Glue database (`<stack>_lake`).
    pub database: String,
    pub region: String,
    /// A local AWS (LocalStack, moto) serving both Glue and S3; `None` on AWS.
    pub endpoint: Option<String>,
}

impl LakeConfig {
    pub fn warehouse(&self) -> String {
        format!("s3://{}/iceberg", self.bucket)
    }

    /// The catalog's properties. On AWS the Glue client and the S3 file IO take the
    /// function's role from the environment; locally both go to the emulator, path-style,
    /// with its test credentials.
    fn properties(&self) -> HashMap<String, String> {
        let mut props = HashMap::from([
            (GLUE_CATALOG_PROP_WAREHOUSE.to_owned(), self.warehouse()),
            (AWS_REGION_NAME.to_owned(), self.region.clone()),
        ]);
        if let Some(endpoint) = &self.endpoint {
            props.extend([
                (GLUE_CATALOG_PROP_URI.to_owned(), endpoint.clone()),
                ("s3.endpoint".to_owned(), endpoint.clone()),
                ("s3.path-style-access".to_owned(), "true".to_owned()),
                (AWS_ACCESS_KEY_ID.to_owned(), "test".to_owned()),
                (AWS_SECRET_ACCESS_KEY.to_owned(), "test".to_owned()),
            ]);
        }
        props
    }
}

/// The lake's catalog, and a Glue client of our own for the commits the `iceberg` crate
/// cannot make yet (a whole-table replace: [`crate::replace`]).
pub struct Lake {
    pub(crate) catalog: GlueCatalog,
    pub(crate) glue: aws_sdk_glue::Client,
    pub(crate) config: LakeConfig,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("config", &self.config)
            .finish()
    }
}

impl Lake {
    pub async fn connect(
        config: LakeConfig,
        glue: aws_sdk_glue::Client,
    ) -> Result<Self, LakeError> {
        let catalog = GlueCatalogBuilder::default()
            .load("realty", config.properties())
            .await?;
        Ok(Self {
            catalog,
            glue,
            config,
        })
    }

    pub fn config(&self) -> &LakeConfig {
        &self.config
    }

    pub(crate) fn ident(&self, def: &TableDef) -> TableIdent {
        TableIdent::new(
            NamespaceIdent::new(self.config.database.clone()),
            def.name.to_owned(),
        )
    }

    /// The table, or `None` when it was never created.
    pub async fn existing(&self, def: &TableDef) -> Result<Option<Table>, LakeError> {
        let ident = self.ident(def);
        if !self.catalog.table_exists(&ident).await? {
            return Ok(None);
        }
        Ok(Some(self.catalog.load_table(&ident).await?))
    }

    /// The table with every column of `def`: created when missing (a racing creator's
    /// table is loaded instead), and given the columns a newer build added (new optional
    /// columns, no data rewritten; older files read them as null).
    pub async fn table(&self, def: &TableDef) -> Result<Table, LakeError> {
        self.table_with(def, def.columns.len()).await
    }

    /// [`Lake::table`] as a build that knew only the first `columns` columns would make it
    /// (the schema-evolution test starts from an older table this way).
    pub async fn table_with(&self, def: &TableDef, columns: usize) -> Result<Table, LakeError> {
        let ident = self.ident(def);
        let table = match self.existing(def).await? {
            Some(table) => table,
            None => {
                let creation = TableCreation::builder()
                    .name(def.name.to_owned())
                    .location(format!("{}/{}", self.config.warehouse(), def.name))
                    .schema(def.schema_of(columns)?)
                    .partition_spec(def.partition_spec()?)
                    .properties(HashMap::from([
                        // The lake's commits re-plan themselves on a conflict
                        // (crate::commit); the crate's own retry re-applies unseen.
                        (
                            TableProperties::PROPERTY_COMMIT_NUM_RETRIES.to_owned(),
                            "0".to_owned(),
                        ),
                        ("write.format.default".to_owned(), "parquet".to_owned()),
                    ]))
                    .build();
                match self.catalog.create_table(ident.namespace(), creation).await {
                    Ok(table) => table,
                    Err(created) => match self.existing(def).await? {
                        Some(table) => table,
                        None => return Err(created.into()),
                    },
                }
            }
        };
        self.evolve(table, def, columns).await
    }

    async fn evolve(
        &self,
        table: Table,
        def: &TableDef,
        columns: usize,
    ) -> Result<Table, LakeError> {
        let schema = table.metadata().current_schema().clone();
        let missing: Vec<_> = def.columns[..columns.min(def.columns.len())]
            .iter()
            .filter(|(name, _, _)| schema.field_by_name(name).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(table);
        }
        let wanted = def.schema_of(columns)?;
        let tx = Transaction::new(&table);
        let mut update = tx.update_schema();
        for (name, _, _) in missing {
            let field = wanted
                .field_by_name(name)
                .ok_or_else(|| LakeError::Invalid(format!("no column {name}")))?;
            // Added columns are optional whatever the row type says: old rows have no value.
            update = update.add_column(iceberg::transaction::AddColumn::optional(
                *name,
                (*field.field_type).clone(),
            ));
        }
        let tx = update.apply(tx)?;
        Ok(tx.commit(&self.catalog).await?)
    }
}
