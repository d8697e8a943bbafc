-- Notification targets per API key: where the jobs submitted with the key are
-- announced when they name no target of their own (a NotifyRequest as JSON:
-- telegram_chat_id, webhook_url, on_queued). NULL: the team-wide [notify] settings.
ALTER TABLE api_keys ADD COLUMN notify TEXT;
