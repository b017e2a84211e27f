import aiohttp
import asyncio
import json

async def execute_command_async(base_url, project_id, command, api_key):
    """Execute a command asynchronously."""
    headers = {'X-API-Key': api_key}

    async with aiohttp.ClientSession(headers=headers) as session:
        # 1. Start the command
        async with session.post(
            f'{base_url}/projects/{project_id}/shell',
            json={'command': command}
        ) as resp:
            data = await resp.json()
            stream_id = data['data']['id']

        # 2. Connect to SSE stream
        async with session.get(
            f'{base_url}/projects/{project_id}/events',
            params={'stream_id': stream_id}
        ) as resp:
            async for line in resp.content:
                line = line.decode('utf-8').strip()

                if line.startswith('event:'):
                    event_type = line[7:]
                elif line.startswith('data:'):
                    data = json.loads(line[6:])

                    if event_type == 'output':
                        print(f"[{data['stream']}] {data['line']}")
                    elif event_type == 'complete':
                        return data

# Usage
result = asyncio.run(execute_command_async(
    'http://localhost:8080',
    'my-project',
    'make build',
    'rdev_xxx'
))
