const EventSource = require('eventsource');

function connectSSE(url, apiKey, handlers) {
  const eventSource = new EventSource(url, {
    headers: {
      'X-API-Key': apiKey,
    },
  });

  eventSource.addEventListener('connected', (e) => {
    handlers.onConnected?.(JSON.parse(e.data));
  });

  eventSource.addEventListener('output', (e) => {
    handlers.onOutput?.(JSON.parse(e.data));
  });

  eventSource.addEventListener('complete', (e) => {
    handlers.onComplete?.(JSON.parse(e.data));
    eventSource.close();
  });

  eventSource.onerror = (e) => {
    handlers.onError?.(e);
  };

  return eventSource;
}

// Usage
connectSSE(
  'http://localhost:8080/projects/my-project/events?stream_id=cmd-001',
  'rdev_xxx',
  {
    onOutput: ({ line, stream }) => console.log(`[${stream}] ${line}`),
    onComplete: ({ exit_code }) => console.log('Done:', exit_code),
  }
);
