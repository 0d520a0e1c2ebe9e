os.execute("touch /tmp/fleetdrill-sandbox-escape")
