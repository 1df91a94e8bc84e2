//! `AWS::SecretsManager::Secret`: created with the template's initial value once; a secret
//! that exists keeps its value, since `realty secrets set` writes the real keys into it.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata as _;

use super::{ProvisionError, Provisioner, aws_err, str_prop};

impl Provisioner<'_> {
    pub(super) async fn secret(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        let req = self
            .secretsmanager
            .create_secret()
            .name(name)
            .set_description(str_prop(&props, "Description").map(str::to_owned))
            .set_kms_key_id(str_prop(&props, "KmsKeyId").map(str::to_owned))
            .set_secret_string(str_prop(&props, "SecretString").map(str::to_owned));
        let arn = match req.send().await {
            Ok(out) => out.arn,
            Err(e) if e.code() == Some("ResourceExistsException") => {
                self.secretsmanager
                    .describe_secret()
                    .secret_id(name)
                    .send()
                    .await
                    .map_err(aws_err(id, "DescribeSecret"))?
                    .arn
            }
            Err(e) => return Err(aws_err(id, "CreateSecret")(e)),
        }
        .ok_or_else(|| ProvisionError::Shape {
            resource: id.into(),
            reason: "Secrets Manager returned no ARN".into(),
        })?;
        self.ctx.set_ref(id, &arn);
        self.ctx.set_attribute(id, "Id", &arn);
        Ok(arn)
    }
}
