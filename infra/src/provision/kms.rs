//! `AWS::KMS::Key` (and its alias).

use super::{ProvisionError, Provisioner, aws_err, str_prop};
use crate::template::{as_bool, scalar_to_string};

impl Provisioner<'_> {
    pub(super) async fn kms_key(&mut self, id: &str) -> Result<String, ProvisionError> {
        // A key has no name: find it again through the template's alias that targets it.
        let alias = self
            .template
            .resources_of("AWS::KMS::Alias")
            .find(|(_, a)| a.properties.get("TargetKeyId") == Some(&serde_json::json!({"Ref": id})))
            .map(|(_, a)| {
                self.ctx
                    .resolve(self.template, &a.properties["AliasName"], id)
            })
            .transpose()?
            .and_then(|v| scalar_to_string(&v));
        let existing = match &alias {
            Some(alias) => self
                .kms
                .describe_key()
                .key_id(alias)
                .send()
                .await
                .ok()
                .and_then(|o| o.key_metadata),
            None => None,
        };
        let metadata = match existing {
            Some(m) => m,
            None => {
                let props = self.props(id)?;
                let mut req = self.kms.create_key();
                if let Some(d) = str_prop(&props, "Description") {
                    req = req.description(d);
                }
                if let Some(policy) = props.get("KeyPolicy") {
                    req = req.policy(policy.to_string());
                }
                let out = req.send().await.map_err(aws_err(id, "CreateKey"))?;
                let m = out.key_metadata.ok_or_else(|| ProvisionError::Shape {
                    resource: id.into(),
                    reason: "CreateKey returned no key".into(),
                })?;
                if props.get("EnableKeyRotation").and_then(as_bool) == Some(true) {
                    self.kms
                        .enable_key_rotation()
                        .key_id(m.key_id())
                        .send()
                        .await
                        .map_err(aws_err(id, "EnableKeyRotation"))?;
                }
                if let Some(alias) = &alias {
                    self.kms
                        .create_alias()
                        .alias_name(alias)
                        .target_key_id(m.key_id())
                        .send()
                        .await
                        .map_err(aws_err(id, "CreateAlias"))?;
                }
                m
            }
        };
        let key_id = metadata.key_id().to_owned();
        self.ctx.set_ref(id, &key_id);
        self.ctx
            .set_attribute(id, "Arn", metadata.arn().unwrap_or_default());
        self.ctx.set_attribute(id, "KeyId", &key_id);
        Ok(key_id)
    }
}
