-- Attach information to users when they are created (and fill it in on updates
-- that lack it).
--
-- Properties:
--   organization     set as the enterprise extension's organization
--   default_user_type  userType when the request has none (default "Employee")
--   source           stored as the enterprise extension's division, e.g. "scim"

local ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

local function has_schema(user, urn)
    for _, s in ipairs(user.schemas or {}) do
        if s == urn then
            return true
        end
    end
    return false
end

local function attach(user, config)
    if user.userType == nil then
        user.userType = config.default_user_type or "Employee"
    end
    local ext = user[ENTERPRISE]
    if ext == nil then
        ext = {}
        user[ENTERPRISE] = ext
    end
    if config.organization and ext.organization == nil then
        ext.organization = config.organization
    end
    if config.source and ext.division == nil then
        ext.division = config.source
    end
    if user.schemas and not has_schema(user, ENTERPRISE) then
        table.insert(user.schemas, ENTERPRISE)
    end
end

function createUser(user, config)
    attach(user, config)
    scim.log("info", "attached defaults to " .. tostring(user.userName))
    return true
end

function updateUser(user, config)
    attach(user, config)
    return true
end
