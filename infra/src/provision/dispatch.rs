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
        if let Some(physical) = self.create(id, kind, &name).await? {
            self.resources.push(ProvisionedResource {
                logical_id: id.to_owned(),
                kind: kind.to_owned(),
                physical_id: physical,
            });
        }
        Ok(())
    }

    /// Creates a resource the emulator serves and returns its physical id; `None` when it was
    /// skipped instead (an alarm or dashboard the emulator cannot hold, or a type with no
    /// local counterpart: [`Self::stand_in`]).
    async fn create(
        &mut self,
        id: &str,
        kind: &str,
        name: &str,
    ) -> Result<Option<String>, ProvisionError> {
        Ok(Some(match kind {
            "AWS::KMS::Key" => self.kms_key(id).await?,
            "AWS::KMS::Alias" => {
                let props = self.props(id)?;
                str_prop(&props, "AliasName").unwrap_or_default().to_owned()
            }
            "AWS::S3::Bucket" => self.bucket(id, name).await?,
            "AWS::DynamoDB::Table" => self.table(id, name).await?,
            "AWS::Kinesis::Stream" => self.stream(id, name).await?,
            "AWS::SNS::Topic" => self.topic(id, name).await?,
            "AWS::SQS::Queue" => self.queue(id, name).await?,
            "AWS::KinesisFirehose::DeliveryStream" => self.delivery_stream(id, name).await?,
            "AWS::SecretsManager::Secret" => self.secret(id, name).await?,
            "AWS::CloudWatch::Alarm" => return self.alarm(id, name).await,
            "AWS::CloudWatch::Dashboard" => return self.dashboard(id, name).await,
            "AWS::Glue::Database" => self.glue_database(id, name).await?,
            _ => {
                self.stand_in(id, kind, name)?;
                return Ok(None);
            }
        }))
    }

    /// A resource with no local counterpart: named (and given its ARN) for the resources
    /// that refer to it, and listed as skipped with the reason.
    fn stand_in(&mut self, id: &str, kind: &str, name: &str) -> Result<(), ProvisionError> {
        let region = self.ctx.region.clone();
        let account = self.ctx.account_id.clone();
        match kind {
            "AWS::S3::BucketPolicy" => {
                let props = self.props(id)?;
                self.ctx
                    .set_ref(id, str_prop(&props, "Bucket").unwrap_or_default());
                self.skip(
                    id,
                    kind,
                    "the emulator serves plain HTTP and enforces bucket policies: this TLS-only policy would deny every request (it applies in AWS)",
                );
            }
            "AWS::SNS::Subscription" => {
                let props = self.props(id)?;
                let protocol = str_prop(&props, "Protocol").unwrap_or("?").to_owned();
                self.skip(
                    id,
                    kind,
                    &format!("the emulator delivers no {protocol} notification: subscribe to the topic yourself to see them locally"),
                );
            }
            "AWS::SecretsManager::ResourcePolicy" => self.skip(
                id,
                kind,
                "the emulators enforce no resource policy: this one, which lets only the poller's role (and ListingKeysAdminArn) read the listing-API keys, applies in AWS; locally `realty secrets set` and the tests read the secret",
            ),
            "AWS::SQS::QueuePolicy" | "AWS::SNS::TopicPolicy" => self.skip(
                id,
                kind,
                "the emulator serves plain HTTP: this TLS-only policy would deny every request where enforced, and its grants to AWS services are not needed locally (it applies in AWS)",
            ),
            "AWS::IAM::Role" => {
                self.ctx.set_ref(id, name);
                self.ctx
                    .set_attribute(id, "Arn", format!("arn:aws:iam::{account}:role/{name}"));
                self.skip(id, kind, "IAM is not enforced by the emulator; its ARN is still handed to the resources that name it");
            }
            "AWS::Logs::LogGroup" | "AWS::Logs::LogStream" => {
                self.ctx.set_ref(id, name);
                self.ctx.set_attribute(
                    id,
                    "Arn",
                    format!("arn:aws:logs:{region}:{account}:log-group:{name}:*"),
                );
                self.skip(id, kind, "locally the functions log to the terminal");
            }
            "AWS::Serverless::Function" => self.function_stand_in(id, name),
            // The HTTP API (its stage, routes and authorizer are in its properties): named
            // for the alarms and dashboard widgets that read its metrics; ApiUrl is left out.
            "AWS::Serverless::HttpApi" => {
                self.ctx.set_ref(id, name);
                self.unserved
                    .insert(id.to_owned(), NO_API_GATEWAY.to_owned());
                self.skip(id, kind, NO_API_GATEWAY);
            }
            "AWS::Glue::Table" => {
                self.ctx.set_ref(id, name.replace('-', "_"));
                self.skip(
                    id,
                    kind,
                    "no Athena locally, the only reader of this JSON table: read the lake's objects in S3, or the Iceberg tables through the local Glue catalog",
                );
            }
            other => self.skip(id, other, "this resource type has no local provisioning"),
        }
        Ok(())
    }

    /// A function: named for the alarms and the runner, skipped with each of its events
    /// (the realty CLI and the runner invoke the handlers in-process).
    fn function_stand_in(&mut self, id: &str, name: &str) {
        let (region, account) = (&self.ctx.region, &self.ctx.account_id);
        let arn = format!("arn:aws:lambda:{region}:{account}:function:{name}");
        self.ctx.set_ref(id, name);
        self.ctx.set_attribute(id, "Arn", arn);
        self.skip(
            id,
            "AWS::Serverless::Function",
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
            self.skip(
                &format!("{id}.{event}"),
                &format!("{event_type} event"),
                unserved_event(&event_type),
            );
        }
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

/// Why a function's event of `event_type` is not provisioned, and what stands in for it.
fn unserved_event(event_type: &str) -> &'static str {
    match event_type {
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
    }
}
