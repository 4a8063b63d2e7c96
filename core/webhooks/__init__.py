"""Webhooks as Standard Webhooks defines them: signing, target checks, event bodies and the
retry schedule (pure; the outbox is core.store.webhook_outbox, delivery worker.webhooks)."""
