-- Alter responses: hide one attribute from some clients.
--
-- Properties:
--   attribute  the attribute to hide: a top-level name ("emails"), or an
--              extension attribute as "URN:name"
--   clients    client ids (comma or space separated) that must not see it
--
-- The v2-v4 hooks get no request context in Gluu's API; scim.context() (a scimd
-- addition) gives the same table the v5 methods get, with tokenDetails.

function getApiVersion(config)
    return 4
end

local function hidden(config)
    local ctx = scim.context()
    local token = ctx and ctx.tokenDetails
    if token == nil then
        return false -- bypass mode: no client to hide from
    end
    for id in string.gmatch(config.clients or "", "[^,%s]+") do
        if id == token.clientId then
            return true
        end
    end
    return false
end

local function strip(resource, config)
    local attr = config.attribute or ""
    local urn, name = string.match(attr, "^(urn:.+):([^:]+)$")
    if urn then
        local ext = resource[urn]
        if type(ext) == "table" then
            ext[name] = nil
        end
    else
        resource[attr] = nil
    end
end

local function one(resource, config)
    if hidden(config) then
        strip(resource, config)
    end
    return true
end

function getUser(user, config)
    return one(user, config)
end

function postCreateUser(user, config)
    return one(user, config)
end

function postUpdateUser(user, config)
    return one(user, config)
end

function postSearchUsers(results, config)
    if hidden(config) then
        for _, user in ipairs(results.Resources or {}) do
            strip(user, config)
        end
    end
    return true
end
