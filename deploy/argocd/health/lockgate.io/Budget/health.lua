-- Health of a Lockgate resource for Argo CD, from the conditions the operator
-- writes. Only Lua base functions are used: Argo CD leaves the standard
-- libraries closed unless useOpenLibs is set.
local function find(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Lockgate operator"
  return hs
end

-- Conditions about an older spec say nothing about this one.
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = obj.status.conditions
-- A spec the operator refused, or one it accepted but cannot serve.
for _, kind in ipairs({"Accepted", "Ready"}) do
  local c = find(conditions, kind)
  if c ~= nil and c.status == "False" then
    hs.status = "Degraded"
    hs.message = describe(c, kind .. "=False")
    return hs
  end
end

-- A key past its expiry, or with its monthly budget spent, serves nobody.
for _, kind in ipairs({"Expired", "Exhausted"}) do
  local c = find(conditions, kind)
  if c ~= nil and c.status == "True" then
    hs.status = "Degraded"
    hs.message = describe(c, kind)
    return hs
  end
end

-- Not every proxy replica loaded the configuration with this object yet.
local programmed = find(conditions, "Programmed")
if programmed ~= nil and programmed.status == "False" then
  hs.status = "Progressing"
  hs.message = describe(programmed, "Waiting for the proxies to load it")
  return hs
end

local ready = find(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready, "Waiting for Ready")
else
  hs.message = "Waiting for Ready"
end
return hs
