-- Sensitive behaviours over message types. huixi_media.qr holds what the QR codes of a fetched image
-- say (a JSON list, NULL until the image is read), which the analysis of its session reads. The
-- consent list (GET /v1/consents) reads agree and disagree events by type, through their own index.

ALTER TABLE huixi_media ADD COLUMN qr MEDIUMTEXT;
ALTER TABLE huixi_messages ADD INDEX huixi_messages_by_type (tenant, msgtype, msgtime);
