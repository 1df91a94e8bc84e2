//! `AWS::Glue::Database`: the lake's catalog database, where the curator creates its Iceberg
//! tables. Both emulators serve Glue (moto natively; LocalStack through the moto it bundles,
//! see `localstack_main.py`).

use aws_sdk_glue::error::ProvideErrorMetadata as _;
use aws_sdk_glue::types::DatabaseInput;

use super::{ProvisionError, Provisioner, aws_err, build_err, str_prop};

impl Provisioner<'_> {
    /// Creates the database (or finds it: provisioning is idempotent) and returns its name,
    /// the physical name with '-' replaced by '_' (Glue and Athena names take no '-').
    pub(super) async fn glue_database(
        &mut self,
        id: &str,
        name: &str,
    ) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        let database = name.replace('-', "_");
        let description = props
            .get("DatabaseInput")
            .and_then(|input| str_prop(input, "Description"))
            .map(str::to_owned);
        let input = DatabaseInput::builder()
            .name(&database)
            .set_description(description)
            .build()
            .map_err(build_err(id))?;
        match self.glue.create_database().database_input(input).send().await {
            Ok(_) => {}
            Err(e) if e.code() == Some("AlreadyExistsException") => {}
            Err(e) => return Err(aws_err(id, "CreateDatabase")(e)),
        }
        self.ctx.set_ref(id, &database);
        Ok(database)
    }
}
