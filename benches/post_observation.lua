-- A guard filing an observation (write + audit, durable before the 201).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"place":"sergels-torg","observed_at":"2026-11-20T21:30:00Z","category":"drug_sale",'
  .. '"description":"Two men selling by the stairs","persons":[{"description":"red jacket"}]}'
