//! `AWS::SNS::Topic`.

use super::{ProvisionError, Provisioner, aws_err, str_prop};

impl Provisioner<'_> {
    pub(super) async fn topic(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        let mut req = self.sns.create_topic().name(name);
        for key in ["KmsMasterKeyId", "DisplayName"] {
            if let Some(v) = str_prop(&props, key) {
                req = req.attributes(key, v);
            }
        }
        let out = req.send().await.map_err(aws_err(id, "CreateTopic"))?;
        let arn = out.topic_arn.unwrap_or_default();
        self.ctx.set_ref(id, &arn);
        self.ctx.set_attribute(id, "TopicArn", &arn);
        self.ctx.set_attribute(id, "TopicName", name);
        Ok(arn)
    }
}
