# cmake -DIN=prog.o -DOUT=prog_object.c -DNAME=symbol -P embed.cmake: the object file as a
# C array (lbd loads its XDP program from memory: nothing to install or find at run time).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}" "/* Generated from ${IN} by forwarding/xdp/embed.cmake. */\n"
  "const unsigned char ${NAME}[] = {\n${bytes}\n};\nconst unsigned long ${NAME}_size = ${size};\n")
