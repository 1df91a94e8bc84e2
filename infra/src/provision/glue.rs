//! `AWS::Glue::Database`: the lake's catalog database, where the curator creates its Iceberg
//! tables. Both emulators serve Glue (moto natively; LocalStack through the moto it bundles,
//! see `localstack_main.py`).

use aws_sdk_glue::error::ProvideErrorMetadata as _;
use aws_sdk_glue::types::DatabaseInput;

use super::{ProvisionError, Provisioner, aws_err, build_err};

impl Provisioner<'_> {
    /// Creates the database (or finds it: provisioning is idempotent) and returns its name,
    /// the physical name with '-' replaced by '_' (Glue and Athena names take no '-').
    pub(super) async fn glue_database(
        &mut self,
        id: &str,
        name: &str,
    ) -> Result<String, ProvisionError> {
        let database = name.replace('-', "_");
        // Only the description is taken: the template's name (`!Join`/`!Split` of the stack
        // name) is not evaluated locally, where every name derives from the logical id.
        let description = match self.template.resources[id]
            .properties
            .pointer("/DatabaseInput/Description")
        {
            Some(value) => {
                let value = self.ctx.resolve(self.template, value, id)?;
                value.as_str().map(str::to_owned)
            }
            None => None,
        };
        let input = DatabaseInput::builder()
            .name(&database)
            .set_description(description)
            .build()
            .map_err(build_err(id))?;
        match self
            .glue
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("AlreadyExistsException") => {}
            Err(e) => return Err(aws_err(id, "CreateDatabase")(e)),
        }
        self.ctx.set_ref(id, &database);
        Ok(database)
    }
}
