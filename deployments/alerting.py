"""Alerts that reach a person: the notification block and the automations `make deploy` creates.

- block `marketpipe-alerts`: Prefect's Custom Webhook notification block, POSTing JSON
  `{"text": "<subject>\\n<body>", "subject": …, "body": …}` to `MARKETPIPE_ALERT_WEBHOOK_URL` (the
  URL is stored as a block secret). Without that setting an existing block is kept (edit it in
  the UI); with neither, no alert automations are created. For Slack or email, create a
  `SlackWebhook` / prefect-email block named `marketpipe-alerts` instead (docs/operations.md).
- automation `marketpipe-alerts`: every `marketpipe.alert.*` event (stale session after its
  deadline, a threshold crossed — `marketpipe.alerts`) → a notification.
- automation `marketpipe-failed-runs`: `prefect.flow-run.Failed` / `.Crashed` of a marketpipe flow
  → a notification naming the run and its state message.
"""

from __future__ import annotations

ALERT_BLOCK = "marketpipe-alerts"
ALERTS_AUTOMATION = "marketpipe-alerts"
FAILED_AUTOMATION = "marketpipe-failed-runs"
FLOW_NAMES = [
    "pipeline",
    "ingestion",
    "processing",
    "historical",
    "realtime",
    "maintenance",
    "health-check",
    "import",
]


def webhook_block(url: str):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    return CustomWebhookNotificationBlock(
        name="marketpipe",
        url="{{url}}",
        method="POST",
        json_data={"text": "{{subject}}\n{{body}}", "subject": "{{subject}}", "body": "{{body}}"},
        secrets={"url": url},
    )


def save_alert_block(settings) -> str | None:
    """The notification block's id: saved from the settings, else an existing one, else None."""
    url = settings.alert_webhook_url
    if url is not None:
        return str(webhook_block(url.get_secret_value()).save(ALERT_BLOCK, overwrite=True))
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for doc in client.read_block_documents():
            if doc.name == ALERT_BLOCK:
                return str(doc.id)
    return None


def alert_automations(block_id: str) -> list:
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    alerts = AutomationCore(
        name=ALERTS_AUTOMATION,
        description="Send marketpipe alert events (stale data, thresholds) to marketpipe-alerts.",
        enabled=True,
        trigger=EventTrigger(
            expect={"marketpipe.alert.*"},
            match=ResourceSpecification({"prefect.resource.id": "marketpipe.*"}),
            posture=Posture.Reactive,
            threshold=1,
            within=0,
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject="marketpipe alert: {{ event.event }}",
                body="{{ event.payload.message }} (at {{ event.occurred }})",
            )
        ],
    )
    failed = AutomationCore(
        name=FAILED_AUTOMATION,
        description="Notify marketpipe-alerts when a marketpipe flow run fails or crashes.",
        enabled=True,
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "flow", "prefect.resource.name": FLOW_NAMES}
            ),
            posture=Posture.Reactive,
            threshold=1,
            within=0,
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject="marketpipe run failed: {{ flow.name }}/{{ flow_run.name }}",
                body=(
                    "Flow run {{ flow.name }}/{{ flow_run.name }} ended "
                    "{{ flow_run.state.name }}: {{ flow_run.state.message }}"
                ),
            )
        ],
    )
    return [alerts, failed]
