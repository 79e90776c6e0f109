module pullsecret-syncer.dev/hello

go 1.22
