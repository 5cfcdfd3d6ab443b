-- Restrict each client to the users of one department (enterprise extension
-- "department").
--
-- Properties:
--   departments  client=department pairs separated by ";" or ",",
--                e.g. "hr-app=HR; sales-crm=Sales"
--   others       what clients not listed get: "deny" (default) or "allow"
--
-- Searches get the filter prepended; a single-resource operation on a user of
-- another department (or a create/replace into one) is answered 403.

local ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

function getApiVersion(config)
    return 5
end

local map = {}

function init(config)
    map = {}
    for client, dept in string.gmatch(config.departments or "", "([^=;,%s]+)%s*=%s*([^;,]+)") do
        map[client] = string.gsub(dept, "%s+$", "")
    end
    return true
end

-- nil: unrestricted; false: denied; a string: the department.
local function department_of(context, config)
    local token = context.tokenDetails
    if token == nil then
        return nil -- bypass mode
    end
    local dept = map[token.clientId]
    if dept then
        return dept
    end
    if config.others == "allow" then
        return nil
    end
    return false
end

local function deny(detail)
    return { status = 403, body = { detail = detail } }
end

local function dept_in(resource)
    local ext = type(resource) == "table" and resource[ENTERPRISE]
    return type(ext) == "table" and ext.department or nil
end

function manageResourceOperation(context, resource, payload, config)
    if context.resourceType ~= "User" then
        return nil
    end
    local dept = department_of(context, config)
    if dept == nil then
        return nil
    end
    if dept == false then
        return deny("this client may not manage users")
    end
    if dept_in(resource) ~= dept then
        return deny("user outside the department of this client")
    end
    -- A replace must not move the user to another department.
    local moved = dept_in(payload)
    if moved ~= nil and moved ~= dept then
        return deny("user outside the department of this client")
    end
    return nil
end

function manageSearchOperation(context, searchRequest, config)
    if context.resourceType ~= "User" then
        return nil
    end
    local dept = department_of(context, config)
    if dept == nil then
        return nil
    end
    if dept == false then
        return deny("this client may not search users")
    end
    local quoted = string.gsub(dept, '[\\"]', "\\%0")
    context:setFilterPrepend(ENTERPRISE .. ':department eq "' .. quoted .. '"')
    return nil
end
