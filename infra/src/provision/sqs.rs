//! `AWS::SQS::Queue`.

use super::{ProvisionError, Provisioner, aws_err};
use crate::template::scalar_to_string;

impl Provisioner<'_> {
    pub(super) async fn queue(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        use aws_sdk_sqs::types::QueueAttributeName as Q;
        let props = self.props(id)?;
        let mut req = self.sqs.create_queue().queue_name(name);
        for (key, attribute) in [
            ("MessageRetentionPeriod", Q::MessageRetentionPeriod),
            ("VisibilityTimeout", Q::VisibilityTimeout),
            ("KmsMasterKeyId", Q::KmsMasterKeyId),
            ("SqsManagedSseEnabled", Q::SqsManagedSseEnabled),
            ("DelaySeconds", Q::DelaySeconds),
        ] {
            if let Some(v) = props.get(key).and_then(scalar_to_string) {
                req = req.attributes(attribute, v);
            }
        }
        // A queue's dead-letter queue (provisioned first: its logical id sorts before).
        if let Some(policy) = props.get("RedrivePolicy").filter(|p| p.is_object()) {
            req = req.attributes(Q::RedrivePolicy, policy.to_string());
        }
        let url = req
            .send()
            .await
            .map_err(aws_err(id, "CreateQueue"))?
            .queue_url
            .unwrap_or_default();
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(Q::QueueArn)
            .send()
            .await
            .map_err(aws_err(id, "GetQueueAttributes"))?
            .attributes
            .and_then(|mut a| a.remove(&Q::QueueArn))
            .unwrap_or_default();
        self.ctx.set_ref(id, &url);
        self.ctx.set_attribute(id, "Arn", arn);
        self.ctx.set_attribute(id, "QueueName", name);
        self.ctx.set_attribute(id, "QueueUrl", &url);
        Ok(url)
    }
}
