package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

type OutputEvent struct {
	Line   string `json:"line"`
	Stream string `json:"stream"`
}

type CompleteEvent struct {
	ExitCode   int `json:"exit_code"`
	DurationMs int `json:"duration_ms"`
}

func executeCommand(baseURL, projectID, command, apiKey string) (*CompleteEvent, error) {
	client := &http.Client{}

	// 1. Start the command
	reqBody := fmt.Sprintf(`{"command": %q}`, command)
	req, _ := http.NewRequest("POST",
		fmt.Sprintf("%s/projects/%s/shell", baseURL, projectID),
		strings.NewReader(reqBody))
	req.Header.Set("X-API-Key", apiKey)
	req.Header.Set("Content-Type", "application/json")

	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	var startResp struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&startResp)
	streamID := startResp.Data.ID

	// 2. Connect to SSE stream
	req, _ = http.NewRequest("GET",
		fmt.Sprintf("%s/projects/%s/events?stream_id=%s", baseURL, projectID, streamID),
		nil)
	req.Header.Set("X-API-Key", apiKey)

	resp, err = client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	scanner := bufio.NewScanner(resp.Body)
	var eventType string

	for scanner.Scan() {
		line := scanner.Text()

		if strings.HasPrefix(line, "event:") {
			eventType = strings.TrimSpace(line[6:])
		} else if strings.HasPrefix(line, "data:") {
			data := line[5:]

			switch eventType {
			case "output":
				var output OutputEvent
				json.Unmarshal([]byte(data), &output)
				fmt.Printf("[%s] %s\n", output.Stream, output.Line)

			case "complete":
				var complete CompleteEvent
				json.Unmarshal([]byte(data), &complete)
				return &complete, nil
			}
		}
	}

	return nil, scanner.Err()
}

func main() {
	result, err := executeCommand(
		"http://localhost:8080",
		"my-project",
		"go test ./...",
		"rdev_xxx",
	)
	if err != nil {
		panic(err)
	}
	fmt.Printf("Exit code: %d\n", result.ExitCode)
}
