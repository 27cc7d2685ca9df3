-- Wrong passwords for ever-new usernames: every attempt costs a hash.
local n = 0
request = function()
  n = n + 1
  local body = '{"username":"nobody' .. n .. '","password":"wrong-password"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
