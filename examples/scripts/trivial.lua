-- The smallest script that runs on every create and every GET by id: what the
-- interception machinery itself costs (scripts/bench-scripts.sh measures it).
function getApiVersion(config)
  return 3
end

function createUser(user, config)
  return true
end

function getUser(user, config)
  return true
end
