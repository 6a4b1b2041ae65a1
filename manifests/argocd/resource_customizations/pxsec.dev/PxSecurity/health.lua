-- Argo CD health check for pxsec.dev/PxSecurity (Lua 5.1, as Argo CD's gopher-lua runs it).
--   Healthy      Ready is True for the current generation
--   Progressing  no status yet, or the operator has not observed the current generation, or Ready is Unknown
--   Degraded     Ready is False for the current generation; the message is Ready's message
local hs = {}
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    local message = condition.message or condition.reason or ""
    if generation ~= nil and condition.observedGeneration ~= nil and condition.observedGeneration < generation then
      hs.status = "Progressing"
      hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
    elseif condition.status == "True" then
      hs.status = "Healthy"
      hs.message = message
    elseif condition.status == "False" then
      hs.status = "Degraded"
      hs.message = message
    else
      hs.status = "Progressing"
      hs.message = message
    end
    return hs
  end
end

hs.status = "Progressing"
hs.message = "Waiting for the Ready condition"
return hs
