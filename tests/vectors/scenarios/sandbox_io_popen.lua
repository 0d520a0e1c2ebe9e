local p = io.popen("id")
