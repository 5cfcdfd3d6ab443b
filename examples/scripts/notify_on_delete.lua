-- Notify an external system when a user is deleted.
--
-- Properties:
--   notify_url   where to POST (its host must be on the engine's notify allow-list)
--   event        the event name sent (default "userDeleted")
--
-- postDeleteUser (API v2) runs after the delete; scim.notify only queues the
-- POST, which scimd sends in the background once the hook chain succeeded.

function getApiVersion(config)
    return 2
end

function init(config)
    if config.notify_url == nil or config.notify_url == "" then
        scim.log("error", "property notify_url is missing")
        return false
    end
    return true
end

function destroy(config)
    return true
end

function postDeleteUser(user, config)
    local sent = scim.notify(config.notify_url, {
        event = config.event or "userDeleted",
        id = user.id,
        userName = user.userName,
        externalId = user.externalId,
        at = scim.now(),
    })
    if not sent then
        scim.log("warn", "notification for " .. tostring(user.id) .. " not queued")
    end
    return true
end
