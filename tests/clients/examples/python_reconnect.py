def connect_with_reconnect(url, api_key, last_event_id=None):
    headers = {'X-API-Key': api_key}
    if last_event_id:
        headers['Last-Event-ID'] = last_event_id

    response = requests.get(url, headers=headers, stream=True)
    return sseclient.SSEClient(response)
