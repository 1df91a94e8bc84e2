//! Which resource types are provisioned and how, and why the others are skipped.

use serde_json::Value;

use super::{
    ProvisionError, ProvisionedResource, Provisioner, SkippedResource, physical_name, str_prop,
};

/// Why the HTTP API, its routes and its address are not provisioned.
const NO_API_GATEWAY: &str = "no API Gateway locally: `realty serve` runs the api handler over the local stack and prints its address";

impl Provisioner<'_> {
    pub(super) async fn provision_one(
        &mut self,
        id: &str,
        kind: &str,
    ) -> Result<(), ProvisionError> {
        if let Some(condition) = self.template.resources[id].condition.clone()
            && !self.ctx.condition(self.template, &condition)?
        {
            self.skip(
                id,
                kind,
                &format!("its condition {condition} is false with these parameters"),
            );
            return Ok(());
        }
        let name = physical_name(&self.ctx.stack_name, id);
        let region = self.ctx.region.clone();
        let account = self.ctx.account_id.clone();
        let physical = match kind {
            "AWS::KMS::Key" => self.kms_key(id).await?,
            "AWS::KMS::Alias" => {
                let props = self.props(id)?;
                str_prop(&props, "AliasName").unwrap_or_default().to_owned()
            }
            "AWS::S3::Bucket" => self.bucket(id, &name).await?,
            "AWS::S3::BucketPolicy" => {
                let props = self.props(id)?;
                self.ctx
                    .set_ref(id, str_prop(&props, "Bucket").unwrap_or_default());
                self.skip(
                    id,
                    kind,
                    "the emulator serves plain HTTP and enforces bucket policies: this TLS-only policy would deny every request (it applies in AWS)",
                );
                return Ok(());
            }
            "AWS::DynamoDB::Table" => self.table(id, &name).await?,
            "AWS::Kinesis::Stream" => self.stream(id, &name).await?,
            "AWS::SNS::Topic" => self.topic(id, &name).await?,
            "AWS::SQS::Queue" => self.queue(id, &name).await?,
            "AWS::KinesisFirehose::DeliveryStream" => self.delivery_stream(id, &name).await?,
            "AWS::SecretsManager::Secret" => self.secret(id, &name).await?,
            "AWS::CloudWatch::Alarm" => match self.alarm(id, &name).await? {
                Some(arn) => arn,
                None => return Ok(()),
            },
            "AWS::CloudWatch::Dashboard" => match self.dashboard(id, &name).await? {
                Some(name) => name,
                None => return Ok(()),
            },
            "AWS::SNS::Subscription" => {
                let props = self.props(id)?;
                let protocol = str_prop(&props, "Protocol").unwrap_or("?").to_owned();
                self.skip(
                    id,
                    kind,
                    &format!("the emulator delivers no {protocol} notification: subscribe to the topic yourself to see them locally"),
                );
                return Ok(());
            }
            "AWS::SecretsManager::ResourcePolicy" => {
                self.skip(
                    id,
                    kind,
                    "the emulators enforce no resource policy: this one, which lets only the poller's role (and ListingKeysAdminArn) read the listing-API keys, applies in AWS; locally `realty secrets set` and the tests read the secret",
                );
                return Ok(());
            }
            "AWS::SQS::QueuePolicy" | "AWS::SNS::TopicPolicy" => {
                self.skip(
                    id,
                    kind,
                    "the emulator serves plain HTTP: this TLS-only policy would deny every request where enforced, and its grants to AWS services are not needed locally (it applies in AWS)",
                );
                return Ok(());
            }
            "AWS::IAM::Role" => {
                self.ctx.set_ref(id, &name);
                self.ctx
                    .set_attribute(id, "Arn", format!("arn:aws:iam::{account}:role/{name}"));
                return {
                    self.skip(id, kind, "IAM is not enforced by the emulator; its ARN is still handed to the resources that name it");
                    Ok(())
                };
            }
            "AWS::Logs::LogGroup" | "AWS::Logs::LogStream" => {
                self.ctx.set_ref(id, &name);
                self.ctx.set_attribute(
                    id,
                    "Arn",
                    format!("arn:aws:logs:{region}:{account}:log-group:{name}:*"),
                );
                return {
                    self.skip(id, kind, "locally the functions log to the terminal");
                    Ok(())
                };
            }
            "AWS::Serverless::Function" => {
                self.ctx.set_ref(id, &name);
                self.ctx.set_attribute(
                    id,
                    "Arn",
                    format!("arn:aws:lambda:{region}:{account}:function:{name}"),
                );
                self.skip(
                    id,
                    kind,
                    "no Lambda service locally: the realty CLI runs the handler in-process",
                );
                let events: Vec<(String, String)> = self.template.resources[id]
                    .properties
                    .get("Events")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(ev, spec)| {
                                (ev.clone(), str_prop(spec, "Type").unwrap_or("?").to_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                for (event, event_type) in events {
                    let reason = match event_type.as_str() {
                        "Schedule" | "ScheduleV2" => {
                            "no EventBridge scheduler locally: the realty CLI invokes the poller"
                        }
                        "HttpApi" => NO_API_GATEWAY,
                        "SQS" => {
                            "no event source mappings locally: the runner (realty_infra::runner::queue) receives from the queue and invokes the handler"
                        }
                        _ => {
                            "no event source mappings locally: the realty CLI reads the stream and invokes the handler"
                        }
                    };
                    self.skip(
                        &format!("{id}.{event}"),
                        &format!("{event_type} event"),
                        reason,
                    );
                }
                return Ok(());
            }
            // The HTTP API (its stage, routes and authorizer are in its properties): named
            // for the alarms and dashboard widgets that read its metrics; ApiUrl is left out.
            "AWS::Serverless::HttpApi" => {
                self.ctx.set_ref(id, &name);
                self.unserved
                    .insert(id.to_owned(), NO_API_GATEWAY.to_owned());
                self.skip(id, kind, NO_API_GATEWAY);
                return Ok(());
            }
            "AWS::Glue::Database" => self.glue_database(id, &name).await?,
            "AWS::Glue::Table" => {
                self.ctx.set_ref(id, name.replace('-', "_"));
                self.skip(
                    id,
                    kind,
                    "no Athena locally, the only reader of this JSON table: read the lake's objects in S3, or the Iceberg tables through the local Glue catalog",
                );
                return Ok(());
            }
            other => {
                return {
                    self.skip(id, other, "this resource type has no local provisioning");
                    Ok(())
                };
            }
        };
        self.resources.push(ProvisionedResource {
            logical_id: id.to_owned(),
            kind: kind.to_owned(),
            physical_id: physical,
        });
        Ok(())
    }

    pub(super) fn skip(&mut self, id: &str, kind: &str, reason: &str) {
        self.skipped.push(SkippedResource {
            logical_id: id.to_owned(),
            kind: kind.to_owned(),
            reason: reason.to_owned(),
        });
    }

    pub(super) fn props(&self, id: &str) -> Result<Value, ProvisionError> {
        Ok(self
            .ctx
            .resolve(self.template, &self.template.resources[id].properties, id)?)
    }
}
