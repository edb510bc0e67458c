from netmgr.cli import main

main()
