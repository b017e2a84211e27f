async function executeCommand(projectId, command, apiKey) {
  // 1. Start the command
  const response = await fetch(`/projects/${projectId}/shell`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'X-API-Key': apiKey,
    },
    body: JSON.stringify({ command }),
  });

  const { data } = await response.json();
  const streamId = data.id;

  // 2. Connect to SSE stream
  const eventSource = new EventSource(
    `/projects/${projectId}/events?stream_id=${streamId}`
  );

  return new Promise((resolve, reject) => {
    eventSource.addEventListener('connected', (e) => {
      console.log('Connected:', JSON.parse(e.data));
    });

    eventSource.addEventListener('output', (e) => {
      const { line, stream } = JSON.parse(e.data);
      if (stream === 'stdout') {
        process.stdout.write(line + '\n');
      } else {
        process.stderr.write(line + '\n');
      }
    });

    eventSource.addEventListener('complete', (e) => {
      const { exit_code, duration_ms } = JSON.parse(e.data);
      eventSource.close();
      resolve({ exitCode: exit_code, duration: duration_ms });
    });

    eventSource.addEventListener('error', (e) => {
      if (e.data) {
        const { message } = JSON.parse(e.data);
        reject(new Error(message));
      }
      // Connection error - browser will auto-reconnect
    });
  });
}

// Usage
executeCommand('my-project', 'npm test', 'rdev_xxx')
  .then(({ exitCode }) => console.log('Exit code:', exitCode))
  .catch(console.error);
