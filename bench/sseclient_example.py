"""The sseclient-py example of SSE_CLIENTS.md, kept exactly as the user wrote it."""
# ruff: noqa
# mypy: ignore-errors

import requests
import sseclient
import json


def execute_command(base_url, project_id, command, api_key):
    """Execute a command and stream output."""
    headers = {
        "X-API-Key": api_key,
        "Content-Type": "application/json",
    }

    # 1. Start the command
    response = requests.post(
        f"{base_url}/projects/{project_id}/shell", headers=headers, json={"command": command}
    )
    data = response.json()["data"]
    stream_id = data["id"]

    # 2. Connect to SSE stream
    response = requests.get(
        f"{base_url}/projects/{project_id}/events",
        params={"stream_id": stream_id},
        headers={"X-API-Key": api_key},
        stream=True,
    )

    client = sseclient.SSEClient(response)
    result = None

    for event in client.events():
        data = json.loads(event.data)

        if event.event == "connected":
            print(f"Connected: {data}")

        elif event.event == "output":
            stream = data.get("stream", "stdout")
            line = data.get("line", "")
            print(f"[{stream}] {line}")

        elif event.event == "complete":
            result = {"exit_code": data["exit_code"], "duration_ms": data["duration_ms"]}
            break

        elif event.event == "heartbeat":
            pass  # Keep-alive

    return result
