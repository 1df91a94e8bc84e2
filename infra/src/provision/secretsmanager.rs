//! `AWS::SecretsManager::Secret`: created with the template's initial value once; a secret
//! that exists keeps its value, since `realty secrets set` writes the real keys into it and
//! `realty api token --rotate` a new token.
//!
//! A `GenerateSecretString` value is drawn as CloudFormation draws it: by Secrets Manager's
//! GetRandomPassword with the same settings (length, excluded character classes), wrapped in
//! `SecretStringTemplate` under `GenerateStringKey` when the template asks for JSON.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata as _;
use serde_json::Value;

use super::{ProvisionError, Provisioner, aws_err, str_prop};
use crate::template::{as_bool, as_i64};

impl Provisioner<'_> {
    pub(super) async fn secret(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        let initial = match props.get("GenerateSecretString") {
            Some(spec) => Some(self.generated_value(id, spec).await?),
            None => str_prop(&props, "SecretString").map(str::to_owned),
        };
        let req = self
            .secretsmanager
            .create_secret()
            .name(name)
            .set_description(str_prop(&props, "Description").map(str::to_owned))
            .set_kms_key_id(str_prop(&props, "KmsKeyId").map(str::to_owned))
            .set_secret_string(initial);
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

    /// The value `GenerateSecretString` (`spec`) makes.
    async fn generated_value(&self, id: &str, spec: &Value) -> Result<String, ProvisionError> {
        let flag = |key: &str| spec.get(key).and_then(as_bool);
        let password = self
            .secretsmanager
            .get_random_password()
            .set_password_length(spec.get("PasswordLength").and_then(as_i64))
            .set_exclude_characters(str_prop(spec, "ExcludeCharacters").map(str::to_owned))
            .set_exclude_lowercase(flag("ExcludeLowercase"))
            .set_exclude_uppercase(flag("ExcludeUppercase"))
            .set_exclude_numbers(flag("ExcludeNumbers"))
            .set_exclude_punctuation(flag("ExcludePunctuation"))
            .set_include_space(flag("IncludeSpace"))
            .set_require_each_included_type(flag("RequireEachIncludedType"))
            .send()
            .await
            .map_err(aws_err(id, "GetRandomPassword"))?
            .random_password
            .ok_or_else(|| ProvisionError::Shape {
                resource: id.into(),
                reason: "GetRandomPassword returned no password".into(),
            })?;
        let shape = |reason: String| ProvisionError::Shape {
            resource: format!("{id}.GenerateSecretString"),
            reason,
        };
        match (
            str_prop(spec, "SecretStringTemplate"),
            str_prop(spec, "GenerateStringKey"),
        ) {
            (None, None) => Ok(password),
            (Some(template), Some(key)) => {
                let mut object: serde_json::Map<String, Value> = serde_json::from_str(template)
                    .map_err(|e| {
                        shape(format!("SecretStringTemplate is not a JSON object: {e}"))
                    })?;
                object.insert(key.to_owned(), Value::String(password));
                Ok(Value::Object(object).to_string())
            }
            _ => Err(shape(
                "SecretStringTemplate and GenerateStringKey go together".into(),
            )),
        }
    }
}
