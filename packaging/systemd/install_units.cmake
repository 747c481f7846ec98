# Run by `cmake --install` and cpack: writes the systemd units naming the
# binary where this installation puts it (the prefix is known only now:
# --prefix, DESTDIR, cpack's /usr), and installs them. The variables come
# from the install(CODE) before this script in CMakeLists.txt.
if(IS_ABSOLUTE "${ferry_bindir}")
  set(FERRY_INSTALL_BINDIR "${ferry_bindir}")
else()
  set(FERRY_INSTALL_BINDIR "${CMAKE_INSTALL_PREFIX}/${ferry_bindir}")
endif()
if(IS_ABSOLUTE "${ferry_unit_dir}")
  set(ferry_unit_destination "${ferry_unit_dir}")
else()
  set(ferry_unit_destination "${CMAKE_INSTALL_PREFIX}/${ferry_unit_dir}")
endif()
foreach(unit ferry-server.service ferry-worker@.service)
  configure_file("${ferry_unit_source}/${unit}.in" "${ferry_unit_build}/${unit}" @ONLY)
  file(INSTALL "${ferry_unit_build}/${unit}" DESTINATION "${ferry_unit_destination}")
endforeach()
